/**
 * Background fetch: after mount, pull the rest of the layer into the cache so
 * that it stops depending on the registry (and later reads cost nothing), and
 * check the blob against its digest on the way.
 *
 * A blob digest is only a name until the whole blob has been hashed: what a
 * lazy layer has verified is its TOC (and the chunks that TOC lists). So the
 * fetch walks the whole blob in order, [0, size) in contiguous ranges whose
 * boundaries are chunk starts (each range holds whole gzip members; the last one
 * the TOC and footer too), hashes the bytes in blob order as they arrive, and
 * extracts the chunks of each range into the cache (chunks already cached are
 * not inflated again; their compressed bytes are still fetched, for the hash).
 * A layer already known to match its digest skips the hash and fetches only the
 * chunks still missing.
 *
 * It must never slow down what a container is actually reading: it runs a
 * bounded number of requests (default 2) of a few MiB each, before each
 * request it waits until no foreground work has been seen for the idle period,
 * and its requests stay under a bandwidth cap. A range that fails is
 * retried a few times with backoff, then left for foreground reads to fetch on
 * demand (the blob then stays unchecked); close() stops it between requests and
 * aborts the ones in flight.
 */
import type { FileChunk } from '../estargz/index.js';
import { OrderedBlobHasher } from './blob-hasher.js';
import type { ChunkLoader } from './chunk-loader.js';
import { parseChunkDigest } from './disk-cache.js';
import { ChunkVerificationError } from './errors.js';
import type { Logger } from './logger.js';

/** Check the blob against `digest` while fetching, or say why not. */
export type BlobVerification = { digest: string; size: number } | { unchecked: string };

export type BlobCheck =
  | { outcome: 'verified'; digest: string }
  | { outcome: 'mismatch'; expected: string; actual: string }
  | { outcome: 'unchecked'; reason: string };

export interface BackgroundFetchOptions {
  /** All chunks of the layer, sorted by blob offset. */
  chunks: readonly FileChunk[];
  loader: ChunkLoader;
  /** End of the last chunk's data: where the walk ends when the blob is not hashed. */
  tocOffset: number;
  verify: BlobVerification;
  /** Requests in flight at once. */
  concurrency: number;
  /** Target size of one request. */
  rangeBytes: number;
  /** Resolves when background work may run: no foreground work in flight, none for the idle period. */
  waitForForeground: () => Promise<void>;
  /** Waits until `bytes` more may be requested under the background bandwidth cap. */
  throttle?: ((bytes: number, signal: AbortSignal) => Promise<void>) | undefined;
  /** Aborted by close(). */
  signal: AbortSignal;
  logger: Logger;
  /** Attempts per range before giving up on it (default 3). */
  maxAttempts?: number;
  /** First retry delay, doubled on each retry (default 500 ms). */
  retryDelayMs?: number;
}

export interface BackgroundFetchResult {
  /** Every chunk of the layer was cached when the fetch ended. */
  complete: boolean;
  cancelled: boolean;
  /** Ranges planned. */
  runs: number;
  /** Ranges given up on after retries or a verification failure. */
  failedRuns: number;
  durationMs: number;
  /** What hashing the whole blob found. */
  blob: BlobCheck;
}

/** A contiguous piece of the blob and the chunks whose gzip members start in it. */
export interface BlobRange {
  start: number;
  end: number;
  chunks: FileChunk[];
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Contiguous ranges covering [0, end), split only at chunk starts, each at most
 * rangeBytes unless the piece between two chunk starts is bigger.
 */
export function planBlobRanges(chunks: readonly FileChunk[], end: number, rangeBytes: number): BlobRange[] {
  const ranges: BlobRange[] = [];
  let start = 0;
  // The latest chunk start seen, and the chunks starting there (they go to the range it opens, if it opens one).
  let boundary = 0;
  let atBoundary: FileChunk[] = [];
  let before: FileChunk[] = [];
  const reach = (next: number): void => {
    if (next - start > rangeBytes && boundary > start) {
      ranges.push({ start, end: boundary, chunks: before });
      start = boundary;
      before = atBoundary;
    } else {
      for (const chunk of atBoundary) before.push(chunk);
    }
    atBoundary = [];
    boundary = next;
  };
  for (const chunk of chunks) {
    if (chunk.offset < boundary) throw new RangeError(`chunks are not sorted by blob offset (${chunk.offset} after ${boundary})`);
    if (chunk.compressedEnd > end) throw new RangeError(`chunk at ${chunk.offset} ends at ${chunk.compressedEnd}, past the walk's end ${end}`);
    if (chunk.offset > boundary) reach(chunk.offset);
    atBoundary.push(chunk);
  }
  if (end > boundary) reach(end);
  for (const chunk of atBoundary) before.push(chunk);
  if (end > start) ranges.push({ start, end, chunks: before });
  return ranges;
}

export async function runBackgroundFetch(options: BackgroundFetchOptions): Promise<BackgroundFetchResult> {
  const started = Date.now();
  const { loader, signal, logger, verify } = options;
  const maxAttempts = options.maxAttempts ?? 3;
  const retryDelayMs = options.retryDelayMs ?? 500;
  const digest = 'digest' in verify ? parseChunkDigest(verify.digest) : undefined;
  let unchecked = 'unchecked' in verify ? verify.unchecked : undefined;
  if (unchecked === undefined && digest === undefined) unchecked = `blob digest ${(verify as { digest: string }).digest} cannot be hashed`;
  const hashing = unchecked === undefined;
  const ranges = planBlobRanges(options.chunks, hashing ? (verify as { size: number }).size : options.tocOffset, options.rangeBytes);
  const hasher = hashing ? new OrderedBlobHasher(digest!.algorithm, ranges.length, Math.max(2, 2 * options.concurrency)) : undefined;
  let next = 0;
  let failedRuns = 0;

  const giveUp = (range: BlobRange, attempts: number, err: unknown): void => {
    failedRuns++;
    hasher?.abandon(`range [${range.start}, ${range.end}) could not be fetched`);
    logger.warn({ err: err instanceof Error ? err.message : String(err), attempts, start: range.start, end: range.end }, 'background fetch gave up on a range; it will be fetched on demand');
  };

  /** Extracts the range's uncached chunks, from `data` when the range was fetched whole, else fetching them. */
  const cacheChunks = async (range: BlobRange, data: Buffer | undefined): Promise<void> => {
    const pending = range.chunks.filter((chunk) => !loader.isCached(chunk));
    if (pending.length === 0) return;
    await loader.load(pending, { singleRange: true, background: true, ...(data !== undefined ? { source: { start: range.start, data } } : {}) });
  };

  const fetchRange = async (index: number): Promise<void> => {
    const range = ranges[index]!;
    await hasher?.admit(index, signal);
    let data: Buffer | undefined;
    for (let attempt = 1; ; attempt++) {
      await options.waitForForeground();
      if (signal.aborted) return;
      await options.throttle?.(range.end - range.start, signal);
      if (signal.aborted) return;
      try {
        // Once the hash is abandoned, only missing chunks are worth a request.
        if (data === undefined && hasher?.active === true) {
          data = await loader.fetchRange(range.start, range.end - range.start);
          hasher.feed(index, data);
        }
        // Foreground reads may have fetched some chunks while we waited.
        await cacheChunks(range, data);
        return;
      } catch (err) {
        if (signal.aborted) return;
        // The loader logged the bad chunk; fetching the same bytes again would not help.
        if (err instanceof ChunkVerificationError || attempt >= maxAttempts) return giveUp(range, attempt, err);
        await sleep(retryDelayMs * 2 ** (attempt - 1), signal);
      }
    }
  };

  const worker = async (): Promise<void> => {
    while (!signal.aborted && next < ranges.length) await fetchRange(next++);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, ranges.length)) }, worker));
  const complete = options.chunks.every((chunk) => loader.isCached(chunk));
  const blob = blobCheck(verify, hasher, unchecked, signal);
  const result = { complete, cancelled: signal.aborted, runs: ranges.length, failedRuns, durationMs: Date.now() - started, blob };
  logger.info(result, 'background fetch finished');
  return result;
}

function blobCheck(verify: BlobVerification, hasher: OrderedBlobHasher | undefined, unchecked: string | undefined, signal: AbortSignal): BlobCheck {
  if (hasher === undefined || !('digest' in verify)) return { outcome: 'unchecked', reason: unchecked ?? 'not hashed' };
  if (signal.aborted) return { outcome: 'unchecked', reason: 'layer closed before the whole blob was fetched' };
  if (!hasher.complete) return { outcome: 'unchecked', reason: hasher.reasonAbandoned ?? 'the whole blob was not fetched' };
  const algorithm = verify.digest.slice(0, verify.digest.indexOf(':'));
  const actual = `${algorithm}:${hasher.digestHex()}`;
  return actual === verify.digest ? { outcome: 'verified', digest: actual } : { outcome: 'mismatch', expected: verify.digest, actual };
}
