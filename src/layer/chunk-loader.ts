/**
 * Turns "these chunks of the layer" into verified bytes: cache first, then one
 * range request per run of adjacent missing chunks, then inflate + verify each
 * chunk before anyone sees it.
 *
 * One flight per chunk: a chunk being fetched for one reader is joined by every
 * other reader that wants it (foreground reads, prefetch and background fetch
 * alike), so 20 concurrent reads of one chunk cost one request. Flights are keyed
 * like the cache (chunk digest, or layer + position for digest-less chunks).
 */
import { ChunkDecodeError, ChunkDigestMismatchError, inflateChunk, type FileChunk } from '../estargz/index.js';
import { SingleFlight } from '../sync/index.js';
import { chunkCacheKey, type ChunkCache } from './chunk-cache.js';
import { ChunkVerificationError } from './errors.js';
import { fetchWithDeadline, type BlobFetcher } from './fetcher.js';
import type { Logger } from './logger.js';

/** Counters a layer exposes; the loader updates them as it works. */
export interface LoaderCounters {
  /** Blob bytes received from the fetcher (all requests: TOC, reads, prefetch, background). */
  bytesFetched: number;
  /** Range requests that returned data. */
  requests: number;
  /** Range requests that failed (deadline, network, short read). */
  fetchErrors: number;
  chunksFetched: number;
  memoryHits: number;
  diskHits: number;
  verificationFailures: number;
}

export interface ChunkLoaderContext {
  ref: string;
  digest: string;
  /** Digest of the TOC the chunks come from (part of the cache key of digest-less chunks). */
  tocDigest: string;
  fetcher: BlobFetcher;
  cache: ChunkCache;
  logger: Logger;
  timeoutMs: number;
  /** Upper bound of one coalesced request for foreground reads. */
  maxRangeBytes: number;
  /** Aborted when the layer closes: in-flight requests stop and their readers are rejected. */
  signal: AbortSignal;
  counters: LoaderCounters;
}

export interface LoadOptions {
  /**
   * Fetch all missing chunks in one request spanning them (prefetch of the
   * landmark range, background runs), even across gaps and beyond maxRangeBytes.
   */
  singleRange?: boolean;
  /**
   * Bulk work nobody is waiting for: fetched chunks go to the disk tier only (when
   * there is one), and load() settles only once they are written, so a fast
   * network cannot pile up unwritten chunks in memory.
   */
  background?: boolean;
  /**
   * Chunks worth fetching along with these when a request goes out anyway
   * (small neighbours of a small read): the missing ones join the same
   * requests and are verified and cached, but this load neither waits for
   * them nor fails with them. Asked for only when some of `chunks` must be
   * fetched: a read served from the caches pays nothing for it.
   */
  alongWith?: () => readonly FileChunk[];
  /**
   * Compressed blob bytes [start, start + data.length) the caller already holds
   * (the background walk, which fetched them to hash the blob): missing chunks are
   * taken from there, no request is made. Every chunk must lie inside.
   */
  source?: { start: number; data: Buffer };
}

interface Claim {
  key: string;
  chunk: FileChunk;
  resolve(data: Buffer): void;
  reject(err: unknown): void;
}

interface Run {
  start: number;
  end: number;
  claims: Claim[];
}

/** Inflations in flight at once for one request; each holds a zlib stream and up to a chunk of output. */
const INFLATE_CONCURRENCY = 8;

export class ChunkLoader {
  private readonly flights = new SingleFlight<Buffer>();

  constructor(private readonly ctx: ChunkLoaderContext) {}

  keyOf(chunk: FileChunk): string {
    return chunkCacheKey(`${this.ctx.digest}+${this.ctx.tocDigest}`, chunk);
  }

  /** Compressed blob bytes [start, start + length), under the layer's deadline and abort signal, counted. */
  async fetchRange(start: number, length: number): Promise<Buffer> {
    const { ctx } = this;
    try {
      const data = await fetchWithDeadline(ctx.fetcher, start, length, { ref: ctx.ref, digest: ctx.digest, timeoutMs: ctx.timeoutMs, signal: ctx.signal });
      ctx.counters.requests++;
      ctx.counters.bytesFetched += data.length;
      return data;
    } catch (err) {
      ctx.counters.fetchErrors++;
      throw err;
    }
  }

  /** Cached in memory or on disk (an index check, no I/O). */
  isCached(chunk: FileChunk): boolean {
    return this.ctx.cache.has(this.keyOf(chunk));
  }

  /** Whether a fetch of this chunk is under way. */
  inFlight(chunk: FileChunk): boolean {
    return this.flights.has(this.keyOf(chunk));
  }

  /** The verified bytes of each chunk, in the order given. Rejects if any chunk cannot be had. */
  load(chunks: readonly FileChunk[], options: LoadOptions = {}): Promise<Buffer[]> {
    const results: Promise<Buffer>[] = [];
    const claimed = new Map<string, Promise<Buffer>>();
    const claims: Claim[] = [];
    for (const chunk of chunks) {
      const key = this.keyOf(chunk);
      const hit = this.ctx.cache.getFromMemory(key);
      if (hit !== undefined) {
        this.ctx.counters.memoryHits++;
        results.push(Promise.resolve(hit));
        continue;
      }
      const mine = claimed.get(key);
      if (mine !== undefined) {
        results.push(mine);
        continue;
      }
      if (this.flights.has(key)) {
        results.push(this.flights.do(key, () => Promise.reject(new Error('unreachable: flight vanished'))));
        continue;
      }
      results.push(this.claim(key, chunk, claimed, claims));
    }
    const all = Promise.all(results);
    if (claims.length === 0) return all;
    // Only when a request will go out: a read served from the disk tier fetches nothing, neighbours included.
    if (options.alongWith !== undefined && claims.some((claim) => !this.ctx.cache.has(claim.key))) this.claimAlong(options.alongWith(), claimed, claims);
    const filling = this.fill(claims, options).catch((err: unknown) => {
      // fill() is not meant to throw; if it does anyway, no reader may be left hanging.
      for (const claim of claims) claim.reject(err);
    });
    if (options.background !== true) return all;
    return Promise.all([all, filling]).then(([buffers]) => buffers);
  }

  /** Claims the chunks of LoadOptions.alongWith that no one has or fetches yet; their outcome is nobody's error. */
  private claimAlong(chunks: readonly FileChunk[], claimed: Map<string, Promise<Buffer>>, claims: Claim[]): void {
    for (const chunk of chunks) {
      const key = this.keyOf(chunk);
      if (claimed.has(key) || this.flights.has(key) || this.ctx.cache.has(key)) continue;
      // A reader that joins this flight later sees its failure; the fetch logs and counts it.
      this.claim(key, chunk, claimed, claims).catch(() => {});
    }
  }

  /**
   * Starts the flight of a chunk this load will fill, now and synchronously,
   * so a reader arriving before the cache lookup finishes joins it instead of
   * starting its own; fill() settles the claim.
   */
  private claim(key: string, chunk: FileChunk, claimed: Map<string, Promise<Buffer>>, claims: Claim[]): Promise<Buffer> {
    let claim!: Claim;
    const settled = new Promise<Buffer>((resolve, reject) => {
      claim = { key, chunk, resolve, reject };
    });
    const flight = this.flights.do(key, () => settled);
    claimed.set(key, flight);
    claims.push(claim);
    return flight;
  }

  /** Settles every claim: from disk if there, else fetched. Never throws. */
  private async fill(claims: Claim[], options: LoadOptions): Promise<void> {
    const missing: Claim[] = [];
    await Promise.all(claims.map(async (claim) => {
      try {
        const hit = await this.ctx.cache.get(claim.key);
        if (hit === undefined) {
          missing.push(claim);
          return;
        }
        if (hit.tier === 'disk') this.ctx.counters.diskHits++;
        else this.ctx.counters.memoryHits++;
        claim.resolve(hit.data);
      } catch {
        missing.push(claim); // a cache that cannot answer is a miss, not a failed read
      }
    }));
    if (missing.length === 0) return;
    const { source } = options;
    if (source !== undefined) {
      const end = source.start + source.data.length;
      const outside = missing.filter((claim) => claim.chunk.offset < source.start || claim.chunk.compressedEnd > end);
      for (const claim of outside) claim.reject(new RangeError(`chunk at ${claim.chunk.offset} of ${this.ctx.digest} is not inside the bytes [${source.start}, ${end}) supplied for it`));
      const inside = missing.filter((claim) => !outside.includes(claim));
      await this.inflateRun({ start: source.start, end, claims: inside }, source.data, options.background === true);
      return;
    }
    await Promise.all(this.plan(missing, options).map((run) => this.fetchRun(run, options.background === true)));
  }

  /** Groups claims into runs of adjacent compressed ranges, each one request. */
  private plan(claims: Claim[], options: LoadOptions): Run[] {
    const sorted = [...claims].sort((a, b) => a.chunk.offset - b.chunk.offset || a.chunk.innerOffset - b.chunk.innerOffset);
    const runs: Run[] = [];
    let current: Run | undefined;
    for (const claim of sorted) {
      const { offset, compressedEnd } = claim.chunk;
      const end = Math.max(current?.end ?? 0, compressedEnd);
      const joins = current !== undefined && (options.singleRange === true || (offset <= current.end && end - current.start <= this.ctx.maxRangeBytes));
      if (joins) {
        current!.end = end;
        current!.claims.push(claim);
      } else {
        current = { start: offset, end: compressedEnd, claims: [claim] };
        runs.push(current);
      }
    }
    return runs;
  }

  private async fetchRun(run: Run, background: boolean): Promise<void> {
    let compressed: Buffer;
    try {
      compressed = await this.fetchRange(run.start, run.end - run.start);
    } catch (err) {
      for (const claim of run.claims) claim.reject(err);
      return;
    }
    await this.inflateRun(run, compressed, background);
  }

  /** Inflates and verifies every claim of the run from the run's compressed bytes. */
  private async inflateRun(run: Run, compressed: Buffer, background: boolean): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < run.claims.length) {
        const claim = run.claims[next++]!;
        await this.inflateClaim(claim, compressed.subarray(claim.chunk.offset - run.start, claim.chunk.compressedEnd - run.start), background);
      }
    };
    await Promise.all(Array.from({ length: Math.min(INFLATE_CONCURRENCY, run.claims.length) }, worker));
  }

  private async inflateClaim(claim: Claim, compressed: Buffer, background: boolean): Promise<void> {
    const { ctx } = this;
    const { chunk } = claim;
    let data: Buffer;
    try {
      data = await inflateChunk(compressed, chunk);
    } catch (err) {
      if (err instanceof ChunkDigestMismatchError || err instanceof ChunkDecodeError) {
        ctx.counters.verificationFailures++;
        // One line per bad chunk fetch: joined readers share this rejection, not this log line.
        ctx.logger.error(
          { ref: ctx.ref, digest: ctx.digest, file: chunk.fileName, chunkOffset: chunk.chunkOffset, blobOffset: chunk.offset, err: err.message },
          'chunk failed verification; read rejected, data not cached',
        );
        claim.reject(new ChunkVerificationError({ ref: ctx.ref, digest: ctx.digest, fileName: chunk.fileName, chunkOffset: chunk.chunkOffset, cause: err }));
      } else {
        claim.reject(err);
      }
      return;
    }
    ctx.counters.chunksFetched++;
    const stored = ctx.cache.put(claim.key, data, { memory: !background });
    // Readers get the data at once; only bulk fetches wait for the disk write.
    claim.resolve(data);
    if (background) await stored;
  }
}
