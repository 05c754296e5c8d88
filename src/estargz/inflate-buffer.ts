import { constants as zlibConstants } from 'node:zlib';

/** Largest output buffer one inflate step may allocate. */
const MAX_INFLATE_BUFFER = 1024 * 1024;

/**
 * Output buffer size for an inflate expected to yield about `outputBytes`.
 * zlib's default, 16 KiB, costs one hand-over between the thread pool and the
 * event loop per 16 KiB: a 2 MiB chunk took 20-35 ms to inflate that way
 * against 6-10 ms in 1 MiB steps, and a 4 MB TOC 35-50 ms against 11-18 ms.
 * The cap bounds what one step allocates, whatever the input claims.
 */
export function inflateBufferSize(outputBytes: number, cap: number = MAX_INFLATE_BUFFER): number {
  return Math.min(cap, Math.max(zlibConstants.Z_DEFAULT_CHUNK, outputBytes));
}
