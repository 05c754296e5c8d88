/**
 * The disk tier of the chunk cache: one file per chunk, named by the digest of
 * its uncompressed content (`<dir>/sha256/ab/abcdef...`), so identical chunks of
 * different layers and images are stored once, and a file's name says what its
 * content must hash to.
 *
 * The index (sizes and LRU order) lives in memory and is rebuilt by scanning the
 * directory at start: cheaper than keeping a second on-disk database consistent
 * with the files, and the files are the truth anyway. Files are written to a temp
 * name in the same directory and renamed, so a crash leaves either no file or a
 * whole one; a file damaged later (disk error, someone editing it) is caught by
 * re-hashing on every read, deleted, and reported as a miss so the caller fetches
 * it again.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger, type Logger } from './logger.js';

const HEX_LENGTHS: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };
const TEMP_MARKER = '.tmp-';

/** `alg` and `hex` of a digest this store can hold, or undefined (the name then could not be trusted as a path). */
export function parseChunkDigest(digest: string): { algorithm: string; hex: string } | undefined {
  const colon = digest.indexOf(':');
  if (colon <= 0) return undefined;
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const want = Object.hasOwn(HEX_LENGTHS, algorithm) ? HEX_LENGTHS[algorithm] : undefined;
  if (want === undefined || hex.length !== want || !/^[0-9a-f]+$/.test(hex)) return undefined;
  return { algorithm, hex };
}

function hashMatches(data: Uint8Array, algorithm: string, hex: string): boolean {
  return createHash(algorithm).update(data).digest('hex') === hex;
}

export interface DiskChunkStoreOptions {
  dir: string;
  /** Upper bound of the bytes of chunk files kept; least recently used files go first. */
  maxBytes: number;
  logger?: Logger;
}

export interface DiskStoreStats {
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
  /** Files whose content no longer matched their name; deleted. */
  corruptions: number;
  evictions: number;
  writeErrors: number;
}

export class DiskChunkStore {
  readonly dir: string;
  readonly maxBytes: number;
  private readonly logger: Logger;
  /** digest → size; Map order is the LRU order (first = least recently used). */
  private readonly index = new Map<string, number>();
  private readonly writing = new Map<string, Promise<void>>();
  private readonly knownDirs = new Set<string>();
  private readonly unlinking = new Set<Promise<void>>();
  private used = 0;
  private counters = { hits: 0, misses: 0, corruptions: 0, evictions: 0, writeErrors: 0 };
  private tempCounter = 0;

  private constructor(options: DiskChunkStoreOptions) {
    if (!Number.isSafeInteger(options.maxBytes) || options.maxBytes < 0) throw new RangeError(`disk cache maxBytes must be a non-negative integer, got ${options.maxBytes}`);
    this.dir = options.dir;
    this.maxBytes = options.maxBytes;
    this.logger = options.logger ?? silentLogger;
  }

  /** Opens (creating it if needed) a store and indexes the chunk files already there. */
  static async open(options: DiskChunkStoreOptions): Promise<DiskChunkStore> {
    const store = new DiskChunkStore(options);
    await mkdir(store.dir, { recursive: true, mode: 0o700 });
    await store.scan();
    return store;
  }

  pathFor(digest: string): string | undefined {
    const parsed = parseChunkDigest(digest);
    if (parsed === undefined) return undefined;
    return join(this.dir, parsed.algorithm, parsed.hex.slice(0, 2), parsed.hex);
  }

  has(digest: string): boolean {
    return this.index.has(digest) || this.writing.has(digest);
  }

  /** The chunk's bytes, re-hashed against its name; undefined on a miss or a damaged file (which is removed). */
  async get(digest: string): Promise<Buffer | undefined> {
    const parsed = parseChunkDigest(digest);
    const size = this.index.get(digest);
    if (parsed === undefined || size === undefined) {
      this.counters.misses++;
      return undefined;
    }
    const path = join(this.dir, parsed.algorithm, parsed.hex.slice(0, 2), parsed.hex);
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (err) {
      // Evicted meanwhile, or removed behind our back: the index was stale.
      this.forget(digest);
      this.counters.misses++;
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn({ err, path }, 'chunk cache file unreadable; fetching again');
      return undefined;
    }
    if (!hashMatches(data, parsed.algorithm, parsed.hex)) {
      this.counters.corruptions++;
      this.counters.misses++;
      this.forget(digest);
      this.logger.warn({ path, digest, bytes: data.length }, 'chunk cache file does not match its digest; deleted, fetching again');
      await unlink(path).catch(() => {});
      return undefined;
    }
    // Touch: move to the most recently used end.
    if (this.index.delete(digest)) this.index.set(digest, size);
    this.counters.hits++;
    return data;
  }

  /**
   * Stores verified chunk bytes. Concurrent puts of one digest write once. A chunk
   * bigger than the whole budget is not stored. Failures are logged and counted,
   * never thrown: the cache is an optimization and the read already has its data.
   */
  put(digest: string, data: Uint8Array): Promise<void> {
    const parsed = parseChunkDigest(digest);
    if (parsed === undefined || data.length > this.maxBytes) return Promise.resolve();
    const existing = this.index.get(digest);
    if (existing !== undefined) {
      this.index.delete(digest);
      this.index.set(digest, existing);
      return Promise.resolve();
    }
    const pending = this.writing.get(digest);
    if (pending !== undefined) return pending;
    const write = this.write(digest, parsed, data).finally(() => this.writing.delete(digest));
    this.writing.set(digest, write);
    return write;
  }

  /** Waits for writes under way (for tests and orderly shutdown). */
  async flush(): Promise<void> {
    while (this.writing.size > 0 || this.unlinking.size > 0) await Promise.all([...this.writing.values(), ...this.unlinking]);
  }

  stats(): DiskStoreStats {
    return { entries: this.index.size, bytes: this.used, ...this.counters };
  }

  private async write(digest: string, parsed: { algorithm: string; hex: string }, data: Uint8Array): Promise<void> {
    const subdir = join(this.dir, parsed.algorithm, parsed.hex.slice(0, 2));
    const final = join(subdir, parsed.hex);
    const temp = `${final}${TEMP_MARKER}${process.pid}-${++this.tempCounter}`;
    try {
      if (!this.knownDirs.has(subdir)) {
        await mkdir(subdir, { recursive: true, mode: 0o700 });
        this.knownDirs.add(subdir);
      }
      await writeFile(temp, data, { flag: 'wx', mode: 0o600 });
      await rename(temp, final);
    } catch (err) {
      this.counters.writeErrors++;
      this.logger.warn({ err, path: final }, 'cannot write chunk cache file; chunk stays uncached on disk');
      await unlink(temp).catch(() => {});
      // Someone may have removed the directory; create it again next time.
      this.knownDirs.delete(subdir);
      return;
    }
    this.remember(digest, data.length);
    this.evict();
  }

  private remember(digest: string, size: number): void {
    const previous = this.index.get(digest);
    if (previous !== undefined) {
      this.used -= previous;
      this.index.delete(digest);
    }
    this.index.set(digest, size);
    this.used += size;
  }

  private forget(digest: string): void {
    const size = this.index.get(digest);
    if (size === undefined) return;
    this.index.delete(digest);
    this.used -= size;
  }

  private evict(): void {
    while (this.used > this.maxBytes) {
      const oldest = this.index.keys().next();
      if (oldest.done === true) break;
      const digest = oldest.value;
      this.forget(digest);
      this.counters.evictions++;
      const path = this.pathFor(digest)!;
      // A reader holding the old index entry gets ENOENT and treats it as a miss.
      const removal: Promise<void> = unlink(path)
        .catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') this.logger.warn({ err, path }, 'cannot delete evicted chunk cache file');
        })
        .finally(() => this.unlinking.delete(removal));
      this.unlinking.add(removal);
    }
  }

  /**
   * Rebuilds the index from the files on disk, oldest use first. Recency comes from
   * the later of atime and mtime: atime alone is unreliable under noatime/relatime,
   * and a file is at least as recently used as it was written. Leftover temp files
   * of a crashed write are removed.
   */
  private async scan(): Promise<void> {
    const found: Array<{ digest: string; size: number; usedAt: number }> = [];
    for (const algorithm of await readdir(this.dir).catch(() => [] as string[])) {
      const hexLength = Object.hasOwn(HEX_LENGTHS, algorithm) ? HEX_LENGTHS[algorithm]! : undefined;
      if (hexLength === undefined) continue;
      const algDir = join(this.dir, algorithm);
      for (const prefix of await readdir(algDir).catch(() => [] as string[])) {
        if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
        const subdir = join(algDir, prefix);
        this.knownDirs.add(subdir);
        for (const name of await readdir(subdir).catch(() => [] as string[])) {
          const path = join(subdir, name);
          if (name.includes(TEMP_MARKER)) {
            await unlink(path).catch(() => {});
            continue;
          }
          if (name.length !== hexLength || !name.startsWith(prefix) || !/^[0-9a-f]+$/.test(name)) continue;
          try {
            const st = await stat(path);
            if (!st.isFile()) continue;
            found.push({ digest: `${algorithm}:${name}`, size: st.size, usedAt: Math.max(st.atimeMs, st.mtimeMs) });
          } catch {
            // Vanished between readdir and stat: nothing to index.
          }
        }
      }
    }
    found.sort((a, b) => a.usedAt - b.usedAt);
    for (const f of found) this.remember(f.digest, f.size);
    // The budget may have shrunk since the last run.
    this.evict();
  }
}
