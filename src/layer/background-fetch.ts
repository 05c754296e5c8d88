/**
 * Background fetch: after mount, pull the rest of the layer into the cache so
 * that it stops depending on the registry (and later reads cost nothing).
 *
 * It must never slow down what a container is actually reading: it runs a
 * bounded number of requests (default 2) of a few MiB each, and before each
 * request it waits until no foreground read is in flight. A run that fails is
 * retried a few times with backoff, then left for foreground reads to fetch on
 * demand; close() stops it between requests and aborts the ones in flight.
 */
import type { FileChunk } from '../estargz/index.js';
import type { ChunkLoader } from './chunk-loader.js';
import { ChunkVerificationError } from './errors.js';
import type { Logger } from './logger.js';

export interface BackgroundFetchOptions {
  /** All chunks of the layer, sorted by blob offset. */
  chunks: readonly FileChunk[];
  loader: ChunkLoader;
  /** Requests in flight at once. */
  concurrency: number;
  /** Target size of one request. */
  rangeBytes: number;
  /** Resolves when no foreground read is in flight. */
  waitForForeground: () => Promise<void>;
  /** Aborted by close(). */
  signal: AbortSignal;
  logger: Logger;
  /** Attempts per run before giving up on it (default 3). */
  maxAttempts?: number;
  /** First retry delay, doubled on each retry (default 500 ms). */
  retryDelayMs?: number;
}

export interface BackgroundFetchResult {
  /** Every chunk of the layer was cached when the fetch ended. */
  complete: boolean;
  cancelled: boolean;
  /** Requests planned (runs of adjacent uncached chunks). */
  runs: number;
  /** Runs given up on after retries or a verification failure. */
  failedRuns: number;
  durationMs: number;
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

/** Runs of adjacent uncached chunks (one key each), each at most rangeBytes unless a single chunk is bigger. */
export function planBackgroundRuns(chunks: readonly FileChunk[], loader: ChunkLoader, rangeBytes: number): FileChunk[][] {
  const runs: FileChunk[][] = [];
  const seen = new Set<string>();
  let current: FileChunk[] = [];
  let start = 0;
  let end = 0;
  for (const chunk of chunks) {
    const key = loader.keyOf(chunk);
    if (seen.has(key) || loader.isCached(chunk)) continue;
    seen.add(key);
    const newEnd = Math.max(end, chunk.compressedEnd);
    if (current.length > 0 && chunk.offset <= end && newEnd - start <= rangeBytes) {
      current.push(chunk);
      end = newEnd;
      continue;
    }
    if (current.length > 0) runs.push(current);
    current = [chunk];
    start = chunk.offset;
    end = chunk.compressedEnd;
  }
  if (current.length > 0) runs.push(current);
  return runs;
}

export async function runBackgroundFetch(options: BackgroundFetchOptions): Promise<BackgroundFetchResult> {
  const started = Date.now();
  const { loader, signal, logger } = options;
  const maxAttempts = options.maxAttempts ?? 3;
  const retryDelayMs = options.retryDelayMs ?? 500;
  const runs = planBackgroundRuns(options.chunks, loader, options.rangeBytes);
  let next = 0;
  let failedRuns = 0;

  const fetchRun = async (run: FileChunk[]): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      await options.waitForForeground();
      if (signal.aborted) return;
      // Foreground reads may have fetched some of these while we waited.
      const pending = run.filter((chunk) => !loader.isCached(chunk));
      if (pending.length === 0) return;
      try {
        await loader.load(pending, { singleRange: true, background: true });
        return;
      } catch (err) {
        if (signal.aborted) return;
        // The loader logged the bad chunk; fetching the same bytes again would not help.
        if (err instanceof ChunkVerificationError || attempt >= maxAttempts) {
          failedRuns++;
          logger.warn({ err: err instanceof Error ? err.message : String(err), attempts: attempt, start: run[0]!.offset }, 'background fetch gave up on a range; it will be fetched on demand');
          return;
        }
        await sleep(retryDelayMs * 2 ** (attempt - 1), signal);
      }
    }
  };

  const worker = async (): Promise<void> => {
    while (!signal.aborted && next < runs.length) await fetchRun(runs[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency, runs.length)) }, worker));
  const complete = options.chunks.every((chunk) => loader.isCached(chunk));
  const result = { complete, cancelled: signal.aborted, runs: runs.length, failedRuns, durationMs: Date.now() - started };
  logger.info(result, 'background fetch finished');
  return result;
}
