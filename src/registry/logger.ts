// The logging interface the client needs: pino's method signatures, so a
// pino logger (or a child of one) can be passed as is, and tests can pass a
// recorder. Nothing here writes to stdout on its own.

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const noopLogger: Logger = Object.freeze({
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
});
