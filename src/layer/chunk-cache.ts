/**
 * The chunk cache shared by every layer of every image: a memory tier bounded in
 * bytes (not entries: chunks range from a few bytes to several MiB) in front of
 * the content-addressed disk tier. Only verified chunk bytes go in, so whatever
 * comes out of memory is served as is; disk content is re-hashed on the way out
 * because the disk is outside our control.
 *
 * Keys are chunk digests ("sha256:..."), so two layers holding the same content
 * share one entry: what is shared is what was verified. A chunk without a digest
 * (only possible when the TOC was read with requireChunkDigests off) gets a key
 * naming its layer (blob and TOC digest) and position and stays in memory: there
 * is nothing to check a disk copy against.
 */
import { LRUCache } from 'lru-cache';
import type { FileChunk } from '../estargz/index.js';
import { DiskChunkStore, parseChunkDigest, type DiskStoreStats } from './disk-cache.js';
import { silentLogger, type Logger } from './logger.js';

export interface ChunkCacheOptions {
  /** Bytes of chunk data kept in memory; 0 turns the memory tier off. */
  memoryBytes: number;
  /** Directory of the disk tier; without it there is no disk tier. */
  diskDir?: string;
  /** Bytes of chunk files kept on disk (default 10 GiB). */
  diskBytes?: number;
  logger?: Logger;
}

export type CacheTier = 'memory' | 'disk';

export interface ChunkCacheStats {
  memoryHits: number;
  diskHits: number;
  misses: number;
  memoryBytes: number;
  memoryEntries: number;
  disk: DiskStoreStats | undefined;
}

const DEFAULT_DISK_BYTES = 10 * 1024 * 1024 * 1024;

/**
 * The cache key of a chunk of a layer. A chunk with a digest is known by it (its
 * bytes are hashed before they are cached). A digest-less chunk is known only by
 * its place in its layer, so `layer` must name everything that layer was opened
 * as (blob digest and TOC digest): two blobs served under one blob digest must
 * not see each other's unverified bytes.
 */
export function chunkCacheKey(layer: string, chunk: FileChunk): string {
  if (chunk.chunkDigest !== undefined && parseChunkDigest(chunk.chunkDigest) !== undefined) return chunk.chunkDigest;
  return `layer:${layer}@${chunk.offset}+${chunk.innerOffset}:${chunk.chunkSize}`;
}

/**
 * A buffer that owns exactly its bytes. Inflated chunks are views into larger
 * buffers (or into Node's shared 8 KiB pool for small ones); keeping such a view
 * would pin memory the byte-bounded LRU does not see.
 */
function compact(data: Buffer): Buffer {
  if (data.byteOffset === 0 && data.buffer.byteLength === data.length) return data;
  const copy = Buffer.allocUnsafeSlow(data.length);
  data.copy(copy);
  return copy;
}

export class ChunkCache {
  private readonly memory: LRUCache<string, Buffer> | undefined;
  private readonly disk: DiskChunkStore | undefined;
  private counters = { memoryHits: 0, diskHits: 0, misses: 0 };

  private constructor(memoryBytes: number, disk: DiskChunkStore | undefined) {
    if (!Number.isSafeInteger(memoryBytes) || memoryBytes < 0) throw new RangeError(`memoryBytes must be a non-negative integer, got ${memoryBytes}`);
    this.memory = memoryBytes > 0
      ? new LRUCache<string, Buffer>({ maxSize: memoryBytes, sizeCalculation: (value) => Math.max(1, value.length) })
      : undefined;
    this.disk = disk;
  }

  static async open(options: ChunkCacheOptions): Promise<ChunkCache> {
    const disk = options.diskDir === undefined
      ? undefined
      : await DiskChunkStore.open({ dir: options.diskDir, maxBytes: options.diskBytes ?? DEFAULT_DISK_BYTES, logger: options.logger ?? silentLogger });
    return new ChunkCache(options.memoryBytes, disk);
  }

  /** A memory-only cache (tests, or a daemon configured without disk cache). */
  static inMemory(memoryBytes: number): ChunkCache {
    return new ChunkCache(memoryBytes, undefined);
  }

  /** The chunk from memory, without touching the disk (the read path's fast, synchronous check). */
  getFromMemory(key: string): Buffer | undefined {
    const hit = this.memory?.get(key);
    if (hit !== undefined) this.counters.memoryHits++;
    return hit;
  }

  /** The chunk from memory or disk (a disk hit is verified and promoted to memory). */
  async get(key: string): Promise<{ data: Buffer; tier: CacheTier } | undefined> {
    const inMemory = this.getFromMemory(key);
    if (inMemory !== undefined) return { data: inMemory, tier: 'memory' };
    if (this.disk !== undefined && this.disk.has(key)) {
      const data = await this.disk.get(key);
      if (data !== undefined) {
        this.counters.diskHits++;
        this.memory?.set(key, compact(data));
        return { data, tier: 'disk' };
      }
    }
    this.counters.misses++;
    return undefined;
  }

  /** Whether the chunk is held in either tier (no I/O, no verification: for planning fetches). */
  has(key: string): boolean {
    return this.memory?.has(key) === true || this.disk?.has(key) === true;
  }

  /**
   * Stores verified bytes. Memory is updated at once; the disk write runs in the
   * background (the read that fetched the chunk does not wait for it) and its
   * promise is returned for callers that want to.
   *
   * `memory: false` keeps a chunk out of the memory tier when the disk tier can
   * take it: bulk background fetches would otherwise push the chunks containers
   * are actually reading out of memory.
   */
  put(key: string, data: Buffer, options: { memory?: boolean } = {}): Promise<void> {
    const toDisk = this.disk !== undefined && parseChunkDigest(key) !== undefined;
    if (options.memory !== false || !toDisk) this.memory?.set(key, compact(data));
    if (!toDisk) return Promise.resolve();
    return this.disk!.put(key, data);
  }

  /** Drops a key from memory (tests use it to force the disk path). */
  dropFromMemory(key: string): void {
    this.memory?.delete(key);
  }

  /** Disk path of a chunk file (for operators and tests), when there is a disk tier. */
  diskPathFor(key: string): string | undefined {
    return this.disk?.pathFor(key);
  }

  /** Waits for background disk writes and evictions. */
  async flush(): Promise<void> {
    await this.disk?.flush();
  }

  stats(): ChunkCacheStats {
    return {
      ...this.counters,
      memoryBytes: this.memory?.calculatedSize ?? 0,
      memoryEntries: this.memory?.size ?? 0,
      disk: this.disk?.stats(),
    };
  }
}
