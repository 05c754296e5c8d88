/**
 * Prefetch of the prioritized part of a layer. A writer that knows which files a
 * container reads first (the `prioritizedFiles` of a conversion) puts them at the
 * start of the blob, followed by the `.prefetch.landmark` entry; blob bytes
 * [0, prefetchEnd) then hold exactly those files. Fetching that range in one
 * request at mount time replaces many small round trips at container start with
 * one large one.
 */
import type { TocIndex } from '../estargz/index.js';
import type { ChunkLoader } from './chunk-loader.js';

export interface PrefetchResult {
  /** False when the blob has no prefetch landmark (nothing to do). */
  applicable: boolean;
  /** Chunks in the prioritized range. */
  chunks: number;
  /** Of those, how many had to be fetched (0: all were cached, no request made). */
  fetchedChunks: number;
  /** The blob range requested, when a request was made. */
  range: { start: number; end: number } | undefined;
}

export async function prefetchLandmarkRange(index: TocIndex, loader: ChunkLoader): Promise<PrefetchResult> {
  const end = index.prefetchEnd;
  if (index.landmark !== 'prefetch' || end === undefined || end <= 0) return { applicable: false, chunks: 0, fetchedChunks: 0, range: undefined };
  const inRange = index.allChunks().filter((chunk) => chunk.offset < end);
  const seen = new Set<string>();
  const missing = inRange.filter((chunk) => {
    const key = loader.keyOf(chunk);
    if (seen.has(key) || loader.isCached(chunk)) return false;
    seen.add(key);
    return true;
  });
  if (missing.length === 0) return { applicable: true, chunks: inRange.length, fetchedChunks: 0, range: undefined };
  // allChunks() is sorted by offset, so the request spans first to last missing chunk;
  // when nothing is cached that is exactly [0-ish, prefetchEnd).
  const range = { start: missing[0]!.offset, end: Math.max(...missing.map((c) => c.compressedEnd)) };
  await loader.load(missing, { singleRange: true });
  return { applicable: true, chunks: inRange.length, fetchedChunks: missing.length, range };
}
