/**
 * V8 compiles typed-array and Buffer accesses without checking for a
 * detached ArrayBuffer for as long as no ArrayBuffer in the isolate has ever
 * been detached (its "ArrayBufferDetaching" protector). The first detach (a
 * postMessage transfer, structuredClone with transfer) invalidates that
 * assumption and throws away every optimised function that relied on it.
 *
 * In the FUSE manager that first detach was a TOC moving to or from the
 * parse worker, in the middle of an image's first pull: on each side, some
 * 17 hot functions of the TOC parser and the file tree were thrown away at
 * once and compiled again while the pull ran (seen with
 * --trace-protector-invalidation and --trace-deopt): 200-290 ms of TurboFan
 * compiles during the pull, on two cores, against ~100 ms without them. Detaching one throwaway buffer when an isolate
 * starts, before anything is optimised, moves that to when it costs nothing.
 *
 * This module imports nothing: the CLI loads it on every start.
 */
export function detachOneArrayBuffer(): void {
  const scratch = new ArrayBuffer(1);
  structuredClone(scratch, { transfer: [scratch] });
}
