/**
 * Where a layer's bytes come from. The layer only knows "give me bytes
 * [offset, offset+length) of the blob"; the registry client is one source, tests
 * use a buffer (and wrap it to count calls or inject failures).
 */
import type { RefLike, RegistryClient } from '../registry/index.js';
import { LayerFetchError, LayerUnavailableError } from './errors.js';

export interface BlobFetcher {
  /**
   * Exactly `length` bytes of the blob from `offset`. Must stop work when `signal`
   * aborts; the layer also stops waiting at that moment, so a fetcher that ignores
   * the signal wastes bandwidth but cannot hang a read.
   */
  (offset: number, length: number, signal: AbortSignal): Promise<Uint8Array>;
  /** The blob's size, when the source can tell (a HEAD request). Needed only when the caller does not know it. */
  size?: (signal: AbortSignal) => Promise<number>;
  /**
   * The last `length` bytes of the blob (all of it when shorter) and its size, in
   * one request: how a layer opens when nobody told it the blob's size.
   */
  tail?: (length: number, signal: AbortSignal) => Promise<{ data: Uint8Array; size: number }>;
}

/** Range reads of one layer blob through the shared registry client (which owns auth, retries, connection reuse). */
export function registryFetcher(registry: Pick<RegistryClient, 'readRange' | 'readTail' | 'blobSize'>, ref: RefLike, digest: string): BlobFetcher {
  const fetcher: BlobFetcher = (offset, length, signal) => registry.readRange(ref, digest, offset, length, { signal });
  fetcher.size = (signal) => registry.blobSize(ref, digest, { signal });
  fetcher.tail = (length, signal) => registry.readTail(ref, digest, length, { signal });
  return fetcher;
}

/** One request a layer made of its source, as an observer sees it. */
export interface FetchEvent {
  ref: string;
  digest: string;
  /** range: a byte range; tail: the blob's end (layer open); size: a size lookup. */
  kind: 'range' | 'tail' | 'size';
  /** ok; cancelled: the layer was closed under it; error: anything else (a deadline, the network, the registry). */
  outcome: 'ok' | 'error' | 'cancelled';
  /** Blob bytes received. */
  bytes: number;
  seconds: number;
  error?: unknown;
}

export type FetchObserver = (event: FetchEvent) => void;

/**
 * The same fetcher, with every request timed and reported (metrics, the
 * daemon's recent registry errors). The observer runs after the request, so
 * it adds nothing to a read's latency but a function call.
 */
export function observedFetcher(fetcher: BlobFetcher, ref: string, digest: string, observe: FetchObserver): BlobFetcher {
  const timed = async <T>(kind: FetchEvent['kind'], signal: AbortSignal, bytesOf: (value: T) => number, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const report = (outcome: FetchEvent['outcome'], bytes: number, error?: unknown): void => {
      observe({ ref, digest, kind, outcome, bytes, seconds: (performance.now() - started) / 1000, ...(error !== undefined ? { error } : {}) });
    };
    try {
      const value = await work();
      report('ok', bytesOf(value));
      return value;
    } catch (err) {
      // The layer's own close aborts with LayerUnavailableError; a deadline aborts with a plain Error and is a failure.
      report(signal.aborted && signal.reason instanceof LayerUnavailableError ? 'cancelled' : 'error', 0, err);
      throw err;
    }
  };
  const observed: BlobFetcher = (offset, length, signal) => timed('range', signal, (data: Uint8Array) => data.length, () => fetcher(offset, length, signal));
  const { size, tail } = fetcher;
  if (size !== undefined) observed.size = (signal) => timed('size', signal, () => 0, () => size(signal));
  if (tail !== undefined) observed.tail = (length, signal) => timed('tail', signal, (value: { data: Uint8Array }) => value.data.length, () => tail(length, signal));
  return observed;
}

/** A blob held in memory (tests, and layers already on local disk). */
export function bufferFetcher(blob: Uint8Array): BlobFetcher {
  const fetcher: BlobFetcher = async (offset, length) => {
    if (offset < 0 || length < 0 || offset + length > blob.length) throw new RangeError(`range [${offset}, ${offset + length}) is outside the ${blob.length}-byte blob`);
    return blob.subarray(offset, offset + length);
  };
  fetcher.size = async () => blob.length;
  fetcher.tail = async (length) => ({ data: blob.subarray(Math.max(0, blob.length - length)), size: blob.length });
  return fetcher;
}

export interface DeadlineContext {
  ref: string;
  digest: string;
  timeoutMs: number;
  /** Aborts the request early (the layer's own signal, fired by close()). */
  signal?: AbortSignal | undefined;
}

/**
 * Runs `work` under its own deadline. The deadline is enforced here by racing the
 * work against an abort, not only by handing the signal on: a wedged TCP
 * connection or a fetcher that ignores signals must still give the reader a
 * rejection on time, never a hang. Every failure becomes a LayerFetchError.
 */
export async function withDeadline<T>(
  work: (signal: AbortSignal) => Promise<T>,
  what: { ref: string; digest: string; offset: number; length: number; label: string },
  ctx: Pick<DeadlineContext, 'timeoutMs' | 'signal'>,
): Promise<T> {
  const info = { ref: what.ref, digest: what.digest, offset: what.offset, length: what.length };
  if (ctx.signal?.aborted === true) throw new LayerFetchError(`${what.label} not started: layer closed`, { ...info, aborted: true });
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`deadline of ${ctx.timeoutMs} ms passed`));
  }, ctx.timeoutMs);
  const onParentAbort = (): void => controller.abort(ctx.signal?.reason);
  ctx.signal?.addEventListener('abort', onParentAbort, { once: true });
  const aborted = new Promise<never>((_, reject) => {
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
  });
  aborted.catch(() => {});
  try {
    const call = Promise.resolve().then(() => work(controller.signal));
    // Whatever the work does after we stopped waiting must not become an unhandled rejection.
    call.catch(() => {});
    return await Promise.race([call, aborted]);
  } catch (err) {
    if (err instanceof LayerFetchError) throw err;
    if (timedOut) throw new LayerFetchError(`${what.label} timed out after ${ctx.timeoutMs} ms`, { ...info, timedOut: true, cause: err });
    if (controller.signal.aborted) throw new LayerFetchError(`${what.label} aborted`, { ...info, aborted: true, cause: err });
    throw new LayerFetchError(`${what.label} failed (${err instanceof Error ? err.message : String(err)})`, { ...info, cause: err });
  } finally {
    clearTimeout(timer);
    ctx.signal?.removeEventListener('abort', onParentAbort);
  }
}

/** One range read of the blob under its own deadline; the answer must be exactly `length` bytes. */
export async function fetchWithDeadline(fetcher: BlobFetcher, offset: number, length: number, ctx: DeadlineContext): Promise<Buffer> {
  const what = { ref: ctx.ref, digest: ctx.digest, offset, length, label: 'range fetch' };
  const data = await withDeadline((signal) => fetcher(offset, length, signal), what, ctx);
  if (data.length !== length) throw new LayerFetchError(`short read: got ${data.length} bytes`, what);
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
