import { createHash, type Hash } from 'node:crypto';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, type Writable } from 'node:stream';
import { promisify } from 'node:util';
import { constants as zlibConstants, createGunzip, gzip as gzipCb, gzipSync } from 'node:zlib';
import { DEFAULT_CHUNK_SIZE, LANDMARK_CONTENT, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, TOC_TAR_NAME } from './constants.js';
import { EstargzError, InvalidTarError, InvalidTocError } from './errors.js';
import { encodeFooter } from './footer.js';
import { cleanLookupPath, normalizeEntryName } from './names.js';
import { parseTocIndex } from './reader.js';
import { encodeTarHeader, paddingFor, simpleFileHeader, TarReader, type TarHeader, type TarTypeflag } from './tar.js';
import { encodeTocJson, formatModtime, tocMemberPayload, type TocEntryJson, type TocEntryType } from './toc.js';
import { TocIndex } from './toc-index.js';
import { DEFAULT_TOC_LIMITS, type CheckedEntry } from './validate.js';

const gzipAsync = promisify(gzipCb);

export interface EstargzWriterOptions {
  /** Uncompressed bytes per chunk of a regular file (default 4 MiB, as stargz-snapshotter). */
  chunkSize?: number;
  /** gzip level; default 9 (best compression), stargz-snapshotter's default. */
  compressionLevel?: number;
  /**
   * Paths to put first, in this order, followed by the prefetch landmark. Spelled as
   * stargz-snapshotter accepts them: "a/b", "/a/b" and "./a/b" are the same file.
   */
  prioritizedFiles?: readonly string[];
  /** Skip prioritized paths that are not in the input instead of failing; they are listed in the result. */
  allowMissingPrioritizedFiles?: boolean;
  /** Where to spool file contents while the input is read (default: the OS temp dir). */
  tmpDir?: string;
  /** End the output stream when the blob is complete (default true). */
  endOutput?: boolean;
}

export interface EstargzBuildResult {
  /** sha256 of the blob: the layer descriptor's digest. */
  compressedDigest: string;
  compressedSize: number;
  /** sha256 of the whole decompressed blob (input entries, landmark, TOC entry, end of archive). */
  diffId: string;
  uncompressedSize: number;
  /** Value for the `containerd.io/snapshot/stargz/toc.digest` annotation. */
  tocDigest: string;
  tocOffset: number;
  /** Entries in the TOC, chunks included. */
  tocEntryCount: number;
  /** Prioritized paths that were not found (only with allowMissingPrioritizedFiles). */
  missingPrioritizedFiles: string[];
}

interface SpooledEntry {
  header: TarHeader;
  /** Name as the TOC will carry it (the tar name, decoded). */
  rawName: string;
  /** Normalized path, the identity of the entry. */
  key: string;
  linkKey: string | undefined;
  spoolOffset: number;
  inline: Buffer | undefined;
  removed: boolean;
}

const TOC_TYPES: Readonly<Record<TarTypeflag, TocEntryType>> = {
  '0': 'reg', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo',
};

/** Bytes of headers we let pile up in one gzip member before starting another. */
const MAX_HEADER_MEMBER_BYTES = 1 << 20;
/** Below this, compressing on the main thread beats a thread-pool round trip. */
const SYNC_GZIP_BYTES = 64 * 1024;

/** Gzip members written one after another, with running digests of both sides. */
class MemberEmitter {
  private pending: Buffer[] = [];
  pendingBytes = 0;
  compressedOffset = 0;
  uncompressedSize = 0;
  private readonly diffHash: Hash = createHash('sha256');
  private readonly blobHash: Hash = createHash('sha256');

  constructor(private readonly output: OutputSink, private readonly level: number) {}

  append(data: Buffer): void {
    if (data.length === 0) return;
    this.diffHash.update(data);
    this.uncompressedSize += data.length;
    this.pending.push(data);
    this.pendingBytes += data.length;
  }

  async closeMember(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    const member = data.length < SYNC_GZIP_BYTES ? gzipSync(data, { level: this.level }) : await gzipAsync(data, { level: this.level });
    await this.writeRaw(member);
  }

  async writeRaw(data: Buffer): Promise<void> {
    this.blobHash.update(data);
    this.compressedOffset += data.length;
    await this.output.write(data);
  }

  digests(): { diffId: string; compressedDigest: string } {
    return { diffId: `sha256:${this.diffHash.digest('hex')}`, compressedDigest: `sha256:${this.blobHash.digest('hex')}` };
  }
}

/** A Writable wrapped for awaiting backpressure and surfacing its errors. */
class OutputSink {
  private failure: Error | undefined;
  private readonly onError = (err: Error): void => {
    this.failure ??= err;
  };

  constructor(private readonly stream: Writable) {
    stream.on('error', this.onError);
  }

  async write(data: Buffer): Promise<void> {
    this.check();
    if (this.stream.write(data)) return;
    await this.waitFor('drain');
  }

  async end(): Promise<void> {
    this.check();
    this.stream.end();
    if (!this.stream.writableFinished) await this.waitFor('finish');
  }

  release(): void {
    this.stream.off('error', this.onError);
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.stream.destroyed || this.stream.writableEnded) throw new EstargzError('output stream closed before the blob was written');
  }

  private waitFor(event: 'drain' | 'finish'): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        this.stream.off(event, onEvent);
        this.stream.off('error', onError);
        this.stream.off('close', onClose);
      };
      const onEvent = (): void => { cleanup(); resolve(); };
      const onError = (err: Error): void => { cleanup(); reject(err); };
      const onClose = (): void => { cleanup(); reject(this.failure ?? new EstargzError('output stream closed before the blob was written')); };
      this.stream.on(event, onEvent);
      this.stream.on('error', onError);
      this.stream.on('close', onClose);
    });
  }
}

function toBuffer(value: Uint8Array | string): Buffer {
  return typeof value === 'string' ? Buffer.from(value) : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

/** The input may be a plain tar or a gzip tar (a regular layer blob); we take either. */
async function* plainTar(source: AsyncIterable<Uint8Array | string>): AsyncGenerator<Buffer> {
  const iterator = source[Symbol.asyncIterator]();
  try {
    const head: Buffer[] = [];
    let headLength = 0;
    while (headLength < 3) {
      const next = await iterator.next();
      if (next.done === true) break;
      const piece = toBuffer(next.value);
      head.push(piece);
      headLength += piece.length;
    }
    const first = Buffer.concat(head);
    async function* all(): AsyncGenerator<Buffer> {
      if (first.length > 0) yield first;
      for (;;) {
        const next = await iterator.next();
        if (next.done === true) return;
        yield toBuffer(next.value);
      }
    }
    if (first[0] === 0x1f && first[1] === 0x8b && first[2] === 0x08) {
      const compressed = Readable.from(all());
      const gunzip = createGunzip();
      let sourceError: unknown;
      compressed.on('error', (err) => {
        sourceError = err;
        gunzip.destroy(err);
      });
      compressed.pipe(gunzip);
      try {
        for await (const piece of gunzip) yield piece as Buffer;
      } catch (err) {
        // The source's own failures pass through; anything else is a corrupt gzip input.
        if (err === sourceError) throw err;
        throw new InvalidTarError('bad-gzip', `gzip input is corrupt: ${(err as Error).message}`);
      } finally {
        compressed.destroy();
        gunzip.destroy();
      }
    } else {
      yield* all();
    }
  } finally {
    await iterator.return?.();
  }
}

function landmarkEntry(name: string): SpooledEntry {
  return {
    header: simpleFileHeader(name, 1), rawName: name, key: name, linkKey: undefined, spoolOffset: 0,
    inline: Buffer.from([LANDMARK_CONTENT]), removed: false,
  };
}

/** Reads the input tar, spooling file bodies to disk, and keeps the last entry for each path (tar semantics). */
async function spoolInput(input: AsyncIterable<Uint8Array | string>, spool: FileHandle): Promise<SpooledEntry[]> {
  const reader = new TarReader(plainTar(input));
  const entries: SpooledEntry[] = [];
  const byKey = new Map<string, SpooledEntry>();
  let spoolSize = 0;
  for (let header = await reader.next(); header !== undefined; header = await reader.next()) {
    const rawName = header.nameBytes.toString('utf8');
    const normalized = normalizeEntryName(rawName);
    if (!normalized.ok) throw new InvalidTarError('unsafe-name', `entry name is not a clean relative path (${normalized.problem})`, rawName);
    const key = normalized.name;
    // Our own metadata entries are regenerated, so a blob converted twice does not carry two TOCs.
    if (key === TOC_TAR_NAME || key === PREFETCH_LANDMARK || key === NO_PREFETCH_LANDMARK) continue;
    let linkKey: string | undefined;
    if (header.typeflag === '1') {
      const target = normalizeEntryName(header.linkNameBytes.toString('utf8'));
      if (!target.ok || target.name === '') throw new InvalidTarError('unsafe-name', `hardlink target is not a clean relative path`, rawName);
      linkKey = target.name;
    }
    const spoolOffset = spoolSize;
    if (header.typeflag === '0') {
      for (let piece = await reader.readBody(); piece !== undefined; piece = await reader.readBody()) {
        let done = 0;
        while (done < piece.length) {
          const { bytesWritten } = await spool.write(piece, done, piece.length - done, spoolSize);
          done += bytesWritten;
          spoolSize += bytesWritten;
        }
      }
    } else {
      header.size = 0; // bodies of non-regular entries carry nothing a filesystem keeps
    }
    const entry: SpooledEntry = { header, rawName, key, linkKey, spoolOffset, inline: undefined, removed: false };
    const previous = byKey.get(key);
    if (previous !== undefined) previous.removed = true;
    byKey.set(key, entry);
    entries.push(entry);
  }
  return entries.filter((e) => !e.removed);
}

function checkedEntryFor(entry: SpooledEntry, index: number): CheckedEntry {
  const h = entry.header;
  return {
    index, rawName: entry.rawName, name: entry.key, type: TOC_TYPES[h.typeflag], size: 0, mtimeMs: undefined,
    linkName: h.linkNameBytes.toString('utf8'), mode: 0, uid: 0, gid: 0, userName: '', groupName: '', offset: 0, innerOffset: 0,
    devMajor: 0, devMinor: 0, xattrs: new Map(), digest: undefined, chunkOffset: 0, chunkSize: 0, chunkDigest: undefined,
  };
}

/** Refuses, before any output, trees that a reader would refuse: hardlinks to nowhere, files used as directories. */
function checkTree(entries: readonly SpooledEntry[]): void {
  try {
    const limits = { ...DEFAULT_TOC_LIMITS, maxEntries: Math.max(entries.length + 1, DEFAULT_TOC_LIMITS.maxEntries) };
    TocIndex.build(entries.map(checkedEntryFor), { tocOffset: Number.MAX_SAFE_INTEGER, tocDigest: '', limits, requireChunkDigests: false });
  } catch (err) {
    if (!(err instanceof InvalidTocError)) throw err;
    const reason = err.reason.startsWith('hardlink-missing') ? 'hardlink-missing-target' : 'invalid-tree';
    throw new InvalidTarError(reason, err.message, err.entryName);
  }
}

/**
 * Puts prioritized entries first (each after its parent directories, and after its
 * hardlink targets so extraction can create the link), then the landmark, then the
 * rest in input order.
 */
function orderEntries(entries: readonly SpooledEntry[], prioritized: readonly string[], allowMissing: boolean): { ordered: SpooledEntry[]; missing: string[] } {
  if (prioritized.length === 0) return { ordered: [landmarkEntry(NO_PREFETCH_LANDMARK), ...entries], missing: [] };
  const byKey = new Map(entries.map((e) => [e.key, e] as const));
  const moved = new Set<SpooledEntry>();
  const front: SpooledEntry[] = [];
  const moveWithParents = (key: string): void => {
    const parts = key === '' ? [] : key.split('/');
    for (let depth = 0; depth <= parts.length; depth++) {
      const entry = byKey.get(parts.slice(0, depth).join('/'));
      if (entry !== undefined && !moved.has(entry)) {
        moved.add(entry);
        front.push(entry);
      }
    }
  };
  const missing: string[] = [];
  for (const path of prioritized) {
    const key = cleanLookupPath(path);
    const entry = byKey.get(key);
    if (entry === undefined) {
      missing.push(path);
      continue;
    }
    const chain: SpooledEntry[] = [entry];
    const seen = new Set<string>([entry.key]);
    for (let link = entry.linkKey; link !== undefined && !seen.has(link); ) {
      const target = byKey.get(link);
      if (target === undefined) break;
      chain.push(target);
      seen.add(link);
      link = target.linkKey;
    }
    for (let i = chain.length - 1; i >= 0; i--) moveWithParents(chain[i]!.key);
  }
  if (missing.length > 0 && !allowMissing) {
    throw new InvalidTarError('missing-prioritized-file', `prioritized files not in the input: ${missing.map((m) => JSON.stringify(m)).join(', ')}`);
  }
  return { ordered: [...front, landmarkEntry(PREFETCH_LANDMARK), ...entries.filter((e) => !moved.has(e))], missing };
}

function xattrsOf(header: TarHeader): Record<string, string> | undefined {
  const prefix = 'SCHILY.xattr.';
  let out: Record<string, string> | undefined;
  for (const [key, value] of header.pax) {
    if (!key.startsWith(prefix) || key.length === prefix.length) continue;
    out ??= {};
    out[key.slice(prefix.length)] = value.toString('base64');
  }
  return out;
}

function modtimeOf(header: TarHeader): string | undefined {
  const fraction = header.mtimeText === undefined ? 0 : Number(header.mtimeText) - header.mtime;
  return formatModtime(header.mtime, Number.isFinite(fraction) ? fraction : 0);
}

async function readSpool(spool: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await spool.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) throw new EstargzError('spool file is shorter than the data written to it');
    filled += bytesRead;
  }
  return buffer;
}

/**
 * Converts a tar stream (plain or gzip) into an eStargz blob written to `output`.
 * Every regular file's data starts a new gzip member and is cut into chunks of
 * `chunkSize`, each its own member; tar headers ride in the member before. The blob
 * decompresses to a tar with the input's entries, a landmark entry and the TOC entry.
 */
export async function writeEstargz(input: AsyncIterable<Uint8Array | string>, output: Writable, options: EstargzWriterOptions = {}): Promise<EstargzBuildResult> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new RangeError(`chunkSize must be a positive integer, got ${chunkSize}`);
  const level = options.compressionLevel ?? zlibConstants.Z_BEST_COMPRESSION;
  if (!Number.isInteger(level) || level < -1 || level > 9) throw new RangeError(`compressionLevel must be -1..9, got ${level}`);
  const sink = new OutputSink(output);
  const workDir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'lazysnap-estargz-'));
  let spool: FileHandle | undefined;
  try {
    spool = await open(join(workDir, 'spool'), 'w+');
    const entries = await spoolInput(input, spool);
    checkTree(entries);
    const { ordered, missing } = orderEntries(entries, options.prioritizedFiles ?? [], options.allowMissingPrioritizedFiles ?? false);

    const emitter = new MemberEmitter(sink, level);
    const tocEntries: TocEntryJson[] = [];
    const userNames = new Map<number, string>();
    const groupNames = new Map<number, string>();
    // Like stargz-snapshotter, record an owner name only when it changes for that id.
    const nameIfChanged = (names: Map<number, string>, id: number, nameBytes: Buffer): string | undefined => {
      const name = nameBytes.toString('utf8');
      if (name === '' || names.get(id) === name) return undefined;
      names.set(id, name);
      return name;
    };

    for (const entry of ordered) {
      const h = entry.header;
      const type = TOC_TYPES[h.typeflag];
      const tocEntry: TocEntryJson = {
        name: entry.rawName,
        type,
        modtime: modtimeOf(h),
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        userName: nameIfChanged(userNames, h.uid, h.unameBytes),
        groupName: nameIfChanged(groupNames, h.gid, h.gnameBytes),
        xattrs: xattrsOf(h),
      };
      if (type === 'symlink' || type === 'hardlink') tocEntry.linkName = h.linkNameBytes.toString('utf8');
      if (type === 'char' || type === 'block') {
        tocEntry.devMajor = h.devMajor;
        tocEntry.devMinor = h.devMinor;
      }
      emitter.append(encodeTarHeader(h));
      if (type !== 'reg') {
        tocEntries.push(tocEntry);
      } else {
        tocEntry.size = h.size;
        const fileHash = createHash('sha256');
        if (h.size === 0) tocEntries.push(tocEntry);
        let current = tocEntry;
        for (let written = 0; written < h.size; ) {
          const length = Math.min(chunkSize, h.size - written);
          if (length === chunkSize) current.chunkSize = chunkSize;
          // The data must begin a gzip member: that is what `offset` points at.
          await emitter.closeMember();
          current.offset = emitter.compressedOffset;
          current.chunkOffset = written;
          const data = entry.inline ?? (await readSpool(spool, entry.spoolOffset + written, length));
          fileHash.update(data);
          current.chunkDigest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
          emitter.append(data);
          tocEntries.push(current);
          written += length;
          current = { name: entry.rawName, type: 'chunk' };
        }
        emitter.append(Buffer.alloc(paddingFor(h.size)));
        tocEntry.digest = `sha256:${fileHash.digest('hex')}`;
      }
      if (emitter.pendingBytes >= MAX_HEADER_MEMBER_BYTES) await emitter.closeMember();
    }
    await emitter.closeMember();

    const tocOffset = emitter.compressedOffset;
    const json = encodeTocJson({ version: 1, entries: tocEntries });
    // Never emit a TOC our own reader would refuse.
    let tocDigest: string;
    try {
      tocDigest = parseTocIndex(json, { tocOffset, limits: { maxChunkSize: Math.max(chunkSize, DEFAULT_TOC_LIMITS.maxChunkSize), maxTocJsonBytes: Math.max(json.length, DEFAULT_TOC_LIMITS.maxTocJsonBytes), maxEntries: Math.max(tocEntries.length, DEFAULT_TOC_LIMITS.maxEntries) } }).tocDigest;
    } catch (err) {
      if (err instanceof InvalidTocError) throw new InvalidTarError('invalid-tree', `the input yields an unusable TOC: ${err.message}`, err.entryName);
      throw err;
    }
    emitter.append(tocMemberPayload(json));
    await emitter.closeMember();
    await emitter.writeRaw(encodeFooter(tocOffset));
    if (options.endOutput ?? true) await sink.end();
    const { diffId, compressedDigest } = emitter.digests();
    return {
      compressedDigest,
      compressedSize: emitter.compressedOffset,
      diffId,
      uncompressedSize: emitter.uncompressedSize,
      tocDigest,
      tocOffset,
      tocEntryCount: tocEntries.length,
      missingPrioritizedFiles: missing,
    };
  } finally {
    sink.release();
    await spool?.close();
    await rm(workDir, { recursive: true, force: true });
  }
}

/**
 * Like writeEstargz, but hands back the blob as a stream. The result settles once the
 * stream has been fully produced; on failure the stream is destroyed with the error.
 */
export function buildEstargz(input: AsyncIterable<Uint8Array | string>, options: Omit<EstargzWriterOptions, 'endOutput'> = {}): { stream: Readable; result: Promise<EstargzBuildResult> } {
  const stream = new PassThrough();
  const result = writeEstargz(input, stream, { ...options, endOutput: true });
  result.catch((err: Error) => stream.destroy(err));
  return { stream, result };
}
