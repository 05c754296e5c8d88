/**
 * src/layer: a lazily fetched eStargz layer. openRemoteLayer gives a
 * RemoteLayer (the LayerContent a FUSE mount serves) whose reads fetch, verify
 * and cache only the chunks they touch; ChunkCache is the memory + disk chunk
 * cache shared by all layers; registryFetcher connects a layer to the registry.
 */
export { openRemoteLayer, RemoteLayer, DEFAULT_FETCH_TIMEOUT_MS, type BackgroundFetchState, type LayerProgress, type LayerStats, type RemoteLayerOptions } from './remote-layer.js';
export { ChunkCache, chunkCacheKey, type CacheTier, type ChunkCacheOptions, type ChunkCacheStats } from './chunk-cache.js';
export { DiskChunkStore, parseChunkDigest, type DiskChunkStoreOptions, type DiskStoreStats } from './disk-cache.js';
export { bufferFetcher, fetchWithDeadline, observedFetcher, registryFetcher, withDeadline, type BlobFetcher, type DeadlineContext, type FetchEvent, type FetchObserver } from './fetcher.js';
export { FsTree, OPAQUE_WHITEOUT, OPAQUE_XATTR, WHITEOUT_PREFIX } from './fs-tree.js';
export { type PrefetchResult } from './prefetch.js';
export { type BackgroundFetchResult, type BlobCheck } from './background-fetch.js';
export { type LoaderCounters } from './chunk-loader.js';
export { DEFAULT_TAIL_SIZE } from './toc-loader.js';
export {
  ChunkVerificationError, InvalidReadError, LayerError, LayerFetchError, LayerPoisonedError, LayerUnavailableError, TocMemoryBudgetError, UnverifiedLayerError,
} from './errors.js';
export { DEFAULT_TOC_MEMORY_BYTES, TocMemoryBudget, TocMemoryReservation, estimateTocMemory, tocParseMemory } from './toc-budget.js';
export { silentLogger, type Logger } from './logger.js';
export { ForegroundActivity } from './foreground-activity.js';
export { BandwidthLimiter } from './bandwidth-limiter.js';
export { inlineTocParser, type TocParser, type TocParseRequest } from './toc-parser.js';
export { SMALL_TOC_JSON_BYTES, ThreadTocParser, type ThreadTocParserOptions } from './thread-toc-parser.js';
