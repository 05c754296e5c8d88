// The logging surface the filesystem needs: pino's (obj, msg) signatures, so
// a pino logger or a child of one can be passed as is and tests can pass a
// recorder. Declared here rather than imported so src/fuse depends on no
// other folder of ours.
export interface FuseLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
