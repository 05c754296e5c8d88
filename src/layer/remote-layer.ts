/**
 * A lazily fetched eStargz layer: what a FUSE mount serves. Opening it reads and
 * verifies the TOC (or takes it from the TOC cache); reads fetch, verify and
 * cache only the chunks they touch. prefetch() pulls the prioritized part in one
 * request, startBackgroundFetch() the rest, so that eventually the layer needs
 * no network at all.
 */
import { chunksForRange, type FileChunk, type Landmark, type TocIndex, type TocLimits } from '../estargz/index.js';
import type { FsNode, LayerContent } from '../fuse/types.js';
import { runBackgroundFetch, type BackgroundFetchResult, type BlobVerification } from './background-fetch.js';
import type { ChunkCache } from './chunk-cache.js';
import { ChunkLoader, type LoaderCounters } from './chunk-loader.js';
import { InvalidReadError, LayerPoisonedError, LayerUnavailableError, UnverifiedLayerError } from './errors.js';
import { withDeadline, type BlobFetcher } from './fetcher.js';
import { FsTree } from './fs-tree.js';
import { ForegroundActivity } from './foreground-activity.js';
import type { BandwidthLimiter } from './bandwidth-limiter.js';
import { silentLogger, type Logger } from './logger.js';
import { prefetchLandmarkRange, type PrefetchResult } from './prefetch.js';
import { DEFAULT_TAIL_SIZE, loadToc, resolveTocLimits } from './toc-loader.js';
import type { TocMemoryBudget, TocMemoryReservation } from './toc-budget.js';
import type { TocParser } from './toc-parser.js';

export interface RemoteLayerOptions {
  /** Image reference the blob is fetched through (for logs and errors). */
  ref: string;
  /** Digest of the layer blob. */
  digest: string;
  /** Blob size from the manifest; when absent the open learns it from its tail read (or a HEAD). */
  size?: number | undefined;
  /** The manifest's `containerd.io/snapshot/stargz/toc.digest` annotation. */
  expectedTocDigest?: string | undefined;
  /** Open without a TOC digest (the TOC then vouches for itself). Default false. */
  allowUnverified?: boolean | undefined;
  fetcher: BlobFetcher;
  cache: ChunkCache;
  logger?: Logger | undefined;
  /** Where verified TOCs are kept, so a cached layer reopens without the registry. */
  tocCacheDir?: string | undefined;
  /** Deadline of every network request (default 30 s). */
  fetchTimeoutMs?: number | undefined;
  /** First read at open: this many bytes from the blob's end (default 512 KiB). */
  tailSize?: number | undefined;
  /** Largest coalesced request for a foreground read (default 16 MiB). */
  maxRangeBytes?: number | undefined;
  /** Requests the background fetch keeps in flight (default 2). */
  backgroundFetchConcurrency?: number | undefined;
  /** Size of one background request (default 4 MiB). */
  backgroundRangeBytes?: number | undefined;
  /**
   * This blob was already hashed whole and matched its digest (by an earlier open):
   * the background fetch then fetches only missing chunks instead of the whole blob.
   */
  blobVerified?: boolean | undefined;
  /** Start prefetch() as part of open (not awaited). Default false: the caller decides when. */
  prefetch?: boolean | undefined;
  tocLimits?: Partial<TocLimits> | undefined;
  /** Refuse TOCs with digest-less chunks (default true): such chunks cannot be verified. */
  requireChunkDigests?: boolean | undefined;
  /** Memory for parsed TOCs shared by the daemon's layers: a TOC that does not fit fails the open with TocMemoryBudgetError. */
  tocBudget?: TocMemoryBudget | undefined;
  /** Where the TOC JSON is parsed (the daemon: a worker thread); inline when absent. */
  tocParser?: TocParser | undefined;
  /**
   * Foreground work shared by the daemon's layers; background fetch waits for its
   * idle period. Default: this layer's own, with no idle period (background work
   * waits only while a read of this layer is in flight).
   */
  foregroundActivity?: ForegroundActivity | undefined;
  /** Cap on background fetch bandwidth, shared by the daemon's layers. Default: none. */
  backgroundBandwidth?: BandwidthLimiter | undefined;
}

export interface LayerStats extends LoaderCounters {
  /** Read calls answered (successfully). */
  reads: number;
  /** File bytes returned by reads. */
  bytesRead: number;
  readErrors: number;
  openedFrom: 'network' | 'toc-cache';
  openMs: number;
  /** Range requests made while opening (footer and TOC). */
  openRequests: number;
}

/**
 * Where a layer's background fetch is: not started (background fetch off, or
 * the layer not mounted yet), waiting for the daemon's reads to go quiet,
 * fetching, done (every chunk cached), stopped short (a range failed: reads fetch
 * it on demand), or poisoned (the whole blob did not hash to its digest).
 */
export type BackgroundFetchState = 'not-started' | 'waiting-for-idle' | 'fetching' | 'done' | 'incomplete' | 'poisoned';

/** How much of a layer is local, for `lazysnap status` and the metrics. */
export interface LayerProgress {
  /** Size of the blob, when the manifest or the open told it. */
  blobSize?: number;
  /** Compressed bytes of all chunks (the blob minus TOC and footer). */
  chunkBytes: number;
  /** Compressed bytes of the chunks now in the chunk cache (memory or disk). */
  cachedBytes: number;
  /** Blob bytes this layer received from the registry since it was opened. */
  fetchedBytes: number;
  backgroundFetch: BackgroundFetchState;
}

export const DEFAULT_FETCH_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RANGE_BYTES = 16 * 1024 * 1024;
const DEFAULT_BACKGROUND_RANGE_BYTES = 4 * 1024 * 1024;
/** How far past a small read's start its neighbouring chunks are fetched with it (see smallNeighbours). */
const NEIGHBOUR_WINDOW_BYTES = 64 * 1024;
const MAX_NEIGHBOUR_CHUNKS = 64;
const DEFAULT_BACKGROUND_CONCURRENCY = 2;

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}

export class RemoteLayer implements LayerContent {
  readonly ref: string;
  readonly digest: string;
  readonly index: TocIndex;
  readonly root: FsNode;
  readonly totalSize: number;
  readonly inodeCount: number;
  private readonly tree: FsTree;
  private readonly loader: ChunkLoader;
  private readonly counters: LoaderCounters;
  private readonly logger: Logger;
  private readonly abort: AbortController;
  private readonly backgroundConcurrency: number;
  private readonly backgroundRangeBytes: number;
  private readonly readStats = { reads: 0, bytesRead: 0, readErrors: 0 };
  private readonly openInfo: { openedFrom: 'network' | 'toc-cache'; openMs: number; openRequests: number };
  private readonly activity: ForegroundActivity;
  private readonly backgroundBandwidth: BandwidthLimiter | undefined;
  private prefetching: Promise<PrefetchResult> | undefined;
  private readonly tocSaved: Promise<void> | undefined;
  private background: Promise<BackgroundFetchResult> | undefined;
  private backgroundState: Exclude<BackgroundFetchState, 'poisoned'> = 'not-started';
  private closed = false;
  private readonly size: number | undefined;
  private readonly fetcher: BlobFetcher;
  private readonly fetchTimeoutMs: number;
  private blobState: 'unchecked' | 'verified' | LayerPoisonedError;
  private readonly tocReservation: TocMemoryReservation | undefined;

  /** @internal use openRemoteLayer */
  constructor(init: {
    options: RemoteLayerOptions; index: TocIndex; loader: ChunkLoader; counters: LoaderCounters; logger: Logger; abort: AbortController;
    openInfo: { openedFrom: 'network' | 'toc-cache'; openMs: number; openRequests: number };
    tocReservation?: TocMemoryReservation | undefined;
    /** The TOC cache write started by the open; close() waits for it. */
    tocSaved?: Promise<void> | undefined;
  }) {
    this.tocReservation = init.tocReservation;
    this.tocSaved = init.tocSaved;
    this.activity = init.options.foregroundActivity ?? new ForegroundActivity(0);
    this.backgroundBandwidth = init.options.backgroundBandwidth;
    this.ref = init.options.ref;
    this.digest = init.options.digest;
    this.index = init.index;
    this.tree = FsTree.fromIndex(init.index);
    this.root = this.tree.root;
    this.totalSize = this.tree.totalSize;
    this.inodeCount = this.tree.inodeCount;
    this.loader = init.loader;
    this.counters = init.counters;
    this.logger = init.logger;
    this.abort = init.abort;
    this.openInfo = init.openInfo;
    this.size = init.options.size;
    this.fetcher = init.options.fetcher;
    this.fetchTimeoutMs = positive('fetchTimeoutMs', init.options.fetchTimeoutMs, DEFAULT_FETCH_TIMEOUT_MS);
    this.blobState = init.options.blobVerified === true ? 'verified' : 'unchecked';
    this.backgroundConcurrency = positive('backgroundFetchConcurrency', init.options.backgroundFetchConcurrency, DEFAULT_BACKGROUND_CONCURRENCY);
    this.backgroundRangeBytes = positive('backgroundRangeBytes', init.options.backgroundRangeBytes, DEFAULT_BACKGROUND_RANGE_BYTES);
  }

  get tocDigest(): string {
    return this.index.tocDigest;
  }

  get landmark(): Landmark | undefined {
    return this.index.landmark;
  }

  /** Estimated heap bytes the TOC index and file tree keep alive (what the layer holds of the TOC memory budget). */
  get tocMemoryBytes(): number {
    return Math.ceil(this.index.estimatedBytes + this.tree.estimatedBytes);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Set when the whole blob was hashed and did not match its digest: every read fails with it. */
  get poisoned(): LayerPoisonedError | undefined {
    return this.blobState instanceof LayerPoisonedError ? this.blobState : undefined;
  }

  /** The whole blob was hashed (now or by an earlier open) and matched its digest. */
  get isBlobVerified(): boolean {
    return this.blobState === 'verified';
  }

  lookup(path: string): FsNode | undefined {
    return this.tree.lookup(path);
  }

  /** Up to `length` bytes of a regular file from `offset` (fewer at end of file), verified. */
  async read(node: FsNode, offset: number, length: number): Promise<Buffer> {
    if (this.closed) throw new LayerUnavailableError('layer is closed', { ref: this.ref, digest: this.digest });
    this.refuseIfPoisoned();
    const toc = this.tree.tocNodeOf(node);
    if (toc === undefined || node.type !== 'reg') throw new InvalidReadError(`read of a node that is not a regular file of layer ${this.digest}`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new InvalidReadError(`invalid read range offset=${offset} length=${length}`);
    }
    const end = Math.min(toc.size, offset + length);
    if (offset >= end) return Buffer.alloc(0);
    const chunks = chunksForRange(toc, offset, end - offset);
    const done = this.activity.begin();
    let pieces: Buffer[];
    try {
      pieces = await this.loader.load(chunks, { alongWith: () => this.smallNeighbours(chunks) });
    } catch (err) {
      this.readStats.readErrors++;
      throw err;
    } finally {
      done();
    }
    // The blob may have been found out while this read waited for its chunks.
    this.refuseIfPoisoned();
    const out = Buffer.allocUnsafe(end - offset);
    chunks.forEach((chunk, i) => {
      const from = Math.max(offset, chunk.chunkOffset);
      const to = Math.min(end, chunk.chunkOffset + chunk.chunkSize);
      pieces[i]!.copy(out, from - offset, from - chunk.chunkOffset, to - chunk.chunkOffset);
    });
    this.readStats.reads++;
    this.readStats.bytesRead += out.length;
    return out;
  }

  /**
   * The chunks stored right after a small read's chunks, within
   * NEIGHBOUR_WINDOW_BYTES of its start: fetched in the same request, they
   * cost a few kilobytes, and the next small file a starting container
   * reads is often the next one in the blob (runc reads /etc/group, then
   * /etc/passwd: two requests before this, one now).
   */
  private smallNeighbours(chunks: readonly FileChunk[]): FileChunk[] {
    const first = chunks[0];
    const last = chunks[chunks.length - 1];
    if (first === undefined || last === undefined) return [];
    const windowEnd = first.offset + NEIGHBOUR_WINDOW_BYTES;
    if (last.compressedEnd >= windowEnd) return [];
    return this.index.chunksAfter(last, windowEnd, MAX_NEIGHBOUR_CHUNKS);
  }

  /**
   * Fetches the prioritized range ([0, prefetchEnd) of a blob with a prefetch
   * landmark) in one request and caches its chunks. Idempotent: later calls share
   * the first one's result. Resolves at once for blobs without that landmark.
   */
  prefetch(): Promise<PrefetchResult> {
    if (this.closed) return Promise.reject(new LayerUnavailableError('layer is closed', { ref: this.ref, digest: this.digest }));
    if (this.prefetching === undefined) {
      // Prefetch serves the reads a starting container is about to make: it is foreground work.
      const done = this.activity.begin();
      this.prefetching = prefetchLandmarkRange(this.index, this.loader).then((result) => {
        if (result.fetchedChunks > 0) this.logger.debug({ ...result }, 'prefetched prioritized files');
        return result;
      });
      this.prefetching.then(done, done);
    }
    return this.prefetching;
  }

  /**
   * Starts fetching the whole blob in the background (idempotent): every
   * uncached chunk is cached, and the blob is hashed against its digest. A
   * mismatch poisons the layer (every read fails from then on). The promise
   * settles when that is over (never rejects). Waits for a prefetch under way
   * first, since that already covers the head of the blob.
   */
  startBackgroundFetch(): Promise<BackgroundFetchResult> {
    this.background ??= (async () => {
      this.backgroundState = 'waiting-for-idle';
      await this.prefetching?.catch(() => {});
      // Nothing, not even a size lookup for the blob check, before the idle period has passed.
      await this.activity.waitForIdle(this.abort.signal);
      this.backgroundState = 'fetching';
      const result = await runBackgroundFetch({
        chunks: this.index.allChunks(),
        loader: this.loader,
        tocOffset: this.index.tocOffset,
        verify: await this.blobVerification(),
        concurrency: this.backgroundConcurrency,
        rangeBytes: this.backgroundRangeBytes,
        waitForForeground: () => this.activity.waitForIdle(this.abort.signal),
        throttle: this.backgroundBandwidth ? (bytes, signal) => this.backgroundBandwidth!.take(bytes, signal) : undefined,
        signal: this.abort.signal,
        logger: this.logger,
      });
      this.recordBlobCheck(result);
      this.backgroundState = result.complete ? 'done' : 'incomplete';
      return result;
    })();
    return this.background;
  }

  /** What the background fetch checks the blob against; needs the blob's size (asked of the registry if unknown). */
  private async blobVerification(): Promise<BlobVerification> {
    if (this.blobState === 'verified') return { unchecked: 'blob already verified' };
    let size = this.size;
    if (size === undefined) {
      const sizeOf = this.fetcher.size;
      if (sizeOf === undefined) return { unchecked: 'blob size unknown' };
      const what = { ref: this.ref, digest: this.digest, offset: 0, length: 0, label: 'blob size lookup' };
      try {
        size = await withDeadline(sizeOf, what, { timeoutMs: this.fetchTimeoutMs, signal: this.abort.signal });
      } catch (err) {
        this.logger.warn({ ref: this.ref, digest: this.digest, err: err instanceof Error ? err.message : String(err) }, 'blob size unknown; the blob will not be checked against its digest');
        return { unchecked: 'blob size unknown' };
      }
    }
    // The footer lies after the TOC: a blob said to end before it cannot be the one the TOC came from.
    if (!Number.isSafeInteger(size) || size <= this.index.tocOffset) {
      this.logger.warn({ ref: this.ref, digest: this.digest, size, tocOffset: this.index.tocOffset }, 'blob size ends before its TOC; the blob cannot be checked against its digest');
      return { unchecked: 'blob size inconsistent with its TOC' };
    }
    return { digest: this.digest, size };
  }

  private recordBlobCheck(result: BackgroundFetchResult): void {
    const check = result.blob;
    if (check.outcome === 'verified') {
      this.blobState = 'verified';
      this.logger.debug({ ref: this.ref, digest: this.digest }, 'whole layer blob fetched and matches its digest');
    } else if (check.outcome === 'mismatch') {
      this.poison(check.actual);
    }
  }

  private refuseIfPoisoned(): void {
    if (this.blobState instanceof LayerPoisonedError) {
      this.readStats.readErrors++;
      throw this.blobState;
    }
  }

  private poison(actual: string): void {
    if (this.blobState instanceof LayerPoisonedError) return;
    this.blobState = new LayerPoisonedError({ ref: this.ref, digest: this.digest, actual });
    this.logger.error(
      { ref: this.ref, digest: this.digest, expected: this.digest, actual, tocDigest: this.index.tocDigest },
      'layer blob does not match its digest; the layer is poisoned and every read of it fails',
    );
  }

  /** True when every chunk is in the cache: reads then need no network. */
  isFullyCached(): boolean {
    for (const chunk of this.index.chunksByOffset()) if (!this.loader.isCached(chunk)) return false;
    return true;
  }

  /**
   * Walks the chunk table and asks the cache about each chunk (index lookups,
   * no I/O): cheap enough for a status call or a scrape, not for a read path.
   * Chunks evicted from the cache count as not cached, as they are.
   */
  progress(): LayerProgress {
    let chunkBytes = 0;
    let cachedBytes = 0;
    for (const chunk of this.index.chunksByOffset()) {
      const bytes = chunk.compressedEnd - chunk.offset;
      chunkBytes += bytes;
      if (this.loader.isCached(chunk)) cachedBytes += bytes;
    }
    const backgroundFetch = this.poisoned !== undefined ? 'poisoned' : this.backgroundState;
    return { ...(this.size !== undefined ? { blobSize: this.size } : {}), chunkBytes, cachedBytes, fetchedBytes: this.counters.bytesFetched, backgroundFetch };
  }

  stats(): LayerStats {
    return { ...this.counters, ...this.readStats, ...this.openInfo };
  }

  /**
   * Stops background work, aborts requests in flight (their readers are rejected)
   * and refuses further reads. Cached chunks stay cached for other layers and
   * later opens.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.tocReservation?.release();
    this.abort.abort(new LayerUnavailableError('layer closed', { ref: this.ref, digest: this.digest }));
    await this.background;
    await this.prefetching?.catch(() => {});
    await this.tocSaved;
  }

}

/**
 * Opens a layer: the verified TOC (from the TOC cache, else at most two range
 * requests), its file tree, and the machinery for verified lazy reads. Fails with
 * UnverifiedLayerError when there is no TOC digest and allowUnverified is off,
 * with the estargz module's InvalidTocError / TocDigestMismatchError when the
 * blob's TOC is unusable or not the promised one, with LayerFetchError when the
 * registry does not answer in time.
 */
export async function openRemoteLayer(options: RemoteLayerOptions): Promise<RemoteLayer> {
  const started = performance.now();
  const { ref, digest } = options;
  const logger = options.logger ?? silentLogger;
  const expected = options.expectedTocDigest === '' ? undefined : options.expectedTocDigest;
  if (expected === undefined && options.allowUnverified !== true) {
    throw new UnverifiedLayerError('no TOC digest to verify the layer against, and unverified layers are not allowed', { ref, digest });
  }
  const timeoutMs = positive('fetchTimeoutMs', options.fetchTimeoutMs, DEFAULT_FETCH_TIMEOUT_MS);
  const counters: LoaderCounters = { bytesFetched: 0, requests: 0, fetchErrors: 0, chunksFetched: 0, memoryHits: 0, diskHits: 0, verificationFailures: 0 };
  const abort = new AbortController();
  const loaded = await loadToc({
    ref,
    digest,
    size: options.size,
    expectedTocDigest: expected,
    fetcher: options.fetcher,
    tocCacheDir: options.tocCacheDir,
    timeoutMs,
    tailSize: positive('tailSize', options.tailSize, DEFAULT_TAIL_SIZE),
    limits: resolveTocLimits(options.tocLimits),
    requireChunkDigests: options.requireChunkDigests ?? true,
    signal: abort.signal,
    logger,
    counters,
    budget: options.tocBudget,
    parser: options.tocParser,
  });
  const openMs = performance.now() - started;
  let layer: RemoteLayer;
  try {
    const loader = new ChunkLoader({
      ref,
      digest,
      fetcher: options.fetcher,
      cache: options.cache,
      logger,
      timeoutMs,
      tocDigest: loaded.index.tocDigest,
      maxRangeBytes: positive('maxRangeBytes', options.maxRangeBytes, DEFAULT_MAX_RANGE_BYTES),
      signal: abort.signal,
      counters,
    });
    layer = new RemoteLayer({
      options: { ...options, size: options.size ?? loaded.size }, index: loaded.index, loader, counters, logger, abort, tocReservation: loaded.reservation, tocSaved: loaded.saved,
      openInfo: { openedFrom: loaded.source, openMs, openRequests: loaded.rangeRequests },
    });
    // The estimate from the JSON was a guess; hold what index and tree really keep.
    loaded.reservation?.resize(layer.tocMemoryBytes);
  } catch (err) {
    loaded.reservation?.release();
    throw err;
  } finally {
    // Only now may the next layer's parse reserve: this one's share is what it keeps.
    loaded.releaseTurn();
  }
  // Not waiting for the TOC cache write (a reopen in this process waits for it; close() does too):
  // on a busy node it held the first Prepare of an image up by some 30 ms.
  logger.info(
    {
      ref, digest, tocDigest: loaded.index.tocDigest, verified: expected !== undefined, from: loaded.source, entries: loaded.index.entryCount,
      landmark: loaded.index.landmark ?? 'none', ms: Math.round(openMs), ...loaded.phases,
    },
    'layer opened',
  );
  if (options.prefetch === true) {
    layer.prefetch().catch((err: unknown) => logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'prefetch failed; files will be fetched on first read'));
  }
  return layer;
}
