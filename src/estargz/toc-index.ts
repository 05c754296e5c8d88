import { NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK } from './constants.js';
import { InvalidTocError, type TocErrorReason } from './errors.js';
import { baseOf, cleanLookupPath, normalizeEntryName, parentOf } from './names.js';
import type { CheckedEntry, TocLimits } from './validate.js';

export type TocNodeType = 'dir' | 'reg' | 'symlink' | 'char' | 'block' | 'fifo';

/**
 * A contiguous piece of a regular file and where its compressed bytes live.
 * To read it: fetch blob bytes [offset, compressedEnd), gunzip them (they may span
 * several gzip members), skip innerOffset bytes, take chunkSize bytes, and check
 * chunkDigest.
 */
export interface FileChunk {
  /** Canonical path of the file (the hardlink target's path for hardlinks). */
  readonly fileName: string;
  /** Uncompressed offset of this chunk within the file. */
  readonly chunkOffset: number;
  /** Uncompressed length of this chunk. */
  readonly chunkSize: number;
  /** Compressed blob offset of the gzip member holding the chunk. */
  readonly offset: number;
  /** Exclusive end of the compressed range: the next larger data offset in the blob, else the TOC offset. */
  readonly compressedEnd: number;
  /** Uncompressed bytes to skip at `offset` before the chunk's data begins (packed small files). */
  readonly innerOffset: number;
  /** Digest of the chunk's uncompressed bytes; undefined only if the index was built with requireChunkDigests false. */
  readonly chunkDigest: string | undefined;
}

/** One file-system object. Hardlinked names share one node (same content, chunks and inode). */
export interface TocNode {
  /** Inode number, unique within the index; the root is 1. */
  readonly ino: number;
  /** Canonical normalized path ("" for the root). */
  readonly name: string;
  readonly type: TocNodeType;
  /** The TOC's mode value as written (may include file-type bits). */
  readonly mode: number;
  /** st_mode: file-type bits from `type` plus permission, setuid/setgid and sticky bits from `mode`. */
  readonly statMode: number;
  readonly uid: number;
  readonly gid: number;
  readonly userName: string;
  readonly groupName: string;
  /** Uncompressed size for regular files, 0 otherwise. */
  readonly size: number;
  /** Modification time in ms since the epoch, undefined when the TOC had none. */
  readonly mtimeMs: number | undefined;
  /** Symlink target, verbatim. */
  readonly linkName: string;
  readonly devMajor: number;
  readonly devMinor: number;
  readonly xattrs: ReadonlyMap<string, Buffer>;
  /** Digest of the whole file content, when the TOC records it. */
  readonly digest: string | undefined;
  /** Chunks in file order, tiling [0, size) exactly; empty for empty and non-regular files. */
  readonly chunks: readonly FileChunk[];
  /** Link count: names for non-directories, 2 + subdirectories for directories. */
  readonly nlink: number;
  /** True for directories the TOC never listed but whose descendants it did. */
  readonly implicit: boolean;
  /** Children by base name, in TOC order; undefined for non-directories. */
  readonly children: ReadonlyMap<string, TocNode> | undefined;
}

interface MutableNode {
  ino: number;
  name: string;
  type: TocNodeType;
  mode: number;
  statMode: number;
  uid: number;
  gid: number;
  userName: string;
  groupName: string;
  size: number;
  mtimeMs: number | undefined;
  linkName: string;
  devMajor: number;
  devMinor: number;
  xattrs: ReadonlyMap<string, Buffer>;
  digest: string | undefined;
  chunks: readonly FileChunk[];
  nlink: number;
  implicit: boolean;
  children: Map<string, MutableNode> | undefined;
}

const TYPE_BITS: Readonly<Record<TocNodeType, number>> = {
  dir: 0o040000, reg: 0o100000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000,
};

export type Landmark = 'prefetch' | 'no-prefetch';

export interface TocIndexBuildOptions {
  tocOffset: number;
  tocDigest: string;
  limits: TocLimits;
  requireChunkDigests: boolean;
}

type PendingChunk = { -readonly [K in keyof FileChunk]: FileChunk[K] };

interface OpenFile {
  entry: CheckedEntry;
  chunks: PendingChunk[];
  covered: number;
}

/** The lookup structure a filesystem and a chunk fetcher work from, built from a validated TOC. */
export class TocIndex {
  readonly root: TocNode;
  readonly tocDigest: string;
  readonly tocOffset: number;
  /** Number of entries in the TOC, chunks included. */
  readonly entryCount: number;
  /** Which landmark the blob carries, if any. */
  readonly landmark: Landmark | undefined;
  /**
   * For blobs with a prefetch landmark: the compressed offset where the prioritized
   * files end, so blob bytes [0, prefetchEnd) are worth fetching up front.
   */
  readonly prefetchEnd: number | undefined;
  private readonly byPath: ReadonlyMap<string, TocNode>;
  private sortedChunks: readonly FileChunk[] | undefined;

  private constructor(root: TocNode, byPath: ReadonlyMap<string, TocNode>, tocDigest: string, tocOffset: number, entryCount: number) {
    this.root = root;
    this.byPath = byPath;
    this.tocDigest = tocDigest;
    this.tocOffset = tocOffset;
    this.entryCount = entryCount;
    const prefetch = root.children?.get(PREFETCH_LANDMARK);
    if (root.children?.get(NO_PREFETCH_LANDMARK)?.type === 'reg') {
      this.landmark = 'no-prefetch';
    } else if (prefetch?.type === 'reg') {
      this.landmark = 'prefetch';
      this.prefetchEnd = prefetch.chunks[0]?.offset ?? 0;
    }
  }

  /** Looks a path up the way stargz-snapshotter does: "/a/b", "./a/b" and "a/b/" are the same; "" is the root. */
  lookup(path: string): TocNode | undefined {
    return this.byPath.get(cleanLookupPath(path));
  }

  /** Every path (hardlink names and implied directories included) with its node, the root first. */
  paths(): IterableIterator<[string, TocNode]> {
    return this.byPath.entries();
  }

  get pathCount(): number {
    return this.byPath.size;
  }

  /** All chunks of all files, ordered by compressed offset (for prefetch and background fetch). */
  allChunks(): readonly FileChunk[] {
    if (this.sortedChunks === undefined) {
      const seen = new Set<TocNode>();
      const out: FileChunk[] = [];
      for (const node of this.byPath.values()) {
        if (seen.has(node)) continue;
        seen.add(node);
        for (const chunk of node.chunks) out.push(chunk);
      }
      out.sort((a, b) => a.offset - b.offset || a.innerOffset - b.innerOffset);
      this.sortedChunks = out;
    }
    return this.sortedChunks;
  }

  /** The chunks of `file` that hold bytes [offset, offset + length), clamped to the file's size. */
  chunksForRange(file: TocNode, offset: number, length: number): FileChunk[] {
    return chunksForRange(file, offset, length);
  }

  /** Builds an index from type-checked entries, enforcing every rule that spans entries. */
  static build(entries: readonly CheckedEntry[], options: TocIndexBuildOptions): TocIndex {
    const { tocOffset, limits } = options;
    const explicit = new Map<string, CheckedEntry>();
    const filesChunks = new Map<CheckedEntry, PendingChunk[]>();
    const allChunks: PendingChunk[] = [];
    const userNames = new Map<number, string>();
    const groupNames = new Map<number, string>();
    let open: OpenFile | undefined;

    const fail: (reason: TocErrorReason, detail: string, entry: CheckedEntry) => never = (reason, detail, entry) => {
      throw new InvalidTocError(reason, detail, entry.rawName ?? `#${entry.index}`);
    };

    const addChunk = (file: OpenFile, entry: CheckedEntry): void => {
      if (entry.chunkOffset < file.covered) fail('chunk-overlap', `chunk at ${entry.chunkOffset} overlaps data up to ${file.covered}`, entry);
      if (entry.chunkOffset > file.covered) fail('chunk-gap', `chunk at ${entry.chunkOffset} leaves a gap after ${file.covered}`, entry);
      const size = entry.chunkSize === 0 ? file.entry.size - entry.chunkOffset : entry.chunkSize;
      if (size <= 0 || entry.chunkOffset + size > file.entry.size) fail('chunk-overflow', `chunk [${entry.chunkOffset}, +${size}) exceeds file size ${file.entry.size}`, entry);
      if (size > limits.maxChunkSize) fail('size-too-large', `chunk of ${size} bytes exceeds ${limits.maxChunkSize}`, entry);
      if (entry.offset >= tocOffset) fail('offset-out-of-range', `data offset ${entry.offset} is not before the TOC at ${tocOffset}`, entry);
      let chunkDigest = entry.chunkDigest;
      // Unchunked files from older writers carry only the file digest, which then covers the one chunk.
      if (chunkDigest === undefined && entry.type === 'reg' && size === entry.size) chunkDigest = entry.digest;
      if (chunkDigest === undefined && options.requireChunkDigests) fail('missing-chunk-digest', 'chunk has no chunkDigest', entry);
      const chunk: PendingChunk = { fileName: file.entry.name, chunkOffset: entry.chunkOffset, chunkSize: size, offset: entry.offset, compressedEnd: tocOffset, innerOffset: entry.innerOffset, chunkDigest };
      file.chunks.push(chunk);
      allChunks.push(chunk);
      file.covered += size;
    };

    const closeFile = (): void => {
      if (open !== undefined && open.covered !== open.entry.size) {
        fail('chunk-incomplete', `chunks cover ${open.covered} of ${open.entry.size} bytes`, open.entry);
      }
      open = undefined;
    };

    for (const entry of entries) {
      if (entry.type === 'chunk') {
        if (open === undefined) fail('chunk-without-file', 'chunk does not follow a non-empty regular file', entry);
        if (entry.rawName !== undefined && entry.rawName !== '' && entry.name !== open.entry.name) {
          fail('chunk-name-mismatch', `chunk names a different file than ${JSON.stringify(open.entry.rawName)}`, entry);
        }
        addChunk(open, entry);
        continue;
      }
      closeFile();
      if (explicit.has(entry.name)) fail('duplicate-entry', 'path appears twice in the TOC', entry);
      explicit.set(entry.name, entry);
      // Writers record a user or group name only when it changes for that id.
      if (entry.userName !== '') userNames.set(entry.uid, entry.userName);
      else entry.userName = userNames.get(entry.uid) ?? '';
      if (entry.groupName !== '') groupNames.set(entry.gid, entry.groupName);
      else entry.groupName = groupNames.get(entry.gid) ?? '';
      if (entry.type === 'reg') {
        if (entry.size > 0) {
          open = { entry, chunks: [], covered: 0 };
          filesChunks.set(entry, open.chunks);
          addChunk(open, entry);
        } else if (entry.chunkSize !== 0 || entry.chunkOffset !== 0) {
          fail('chunk-overflow', 'empty file has chunk fields', entry);
        }
      }
    }
    closeFile();

    // Compressed ends: a chunk's gzip data runs at most to the next larger data offset
    // (the TOC offset for the last). Sorting also exposes two chunks claiming one spot.
    const byPosition = [...allChunks].sort((a, b) => a.offset - b.offset || a.innerOffset - b.innerOffset);
    let end = tocOffset;
    for (let i = byPosition.length - 1; i >= 0; i--) {
      const chunk = byPosition[i]!;
      const next = byPosition[i + 1];
      if (next !== undefined && next.offset === chunk.offset && next.innerOffset === chunk.innerOffset) {
        throw new InvalidTocError('duplicate-chunk-offset', `two chunks start at offset ${chunk.offset}+${chunk.innerOffset}`, next.fileName);
      }
      if (next !== undefined && next.offset > chunk.offset) end = next.offset;
      chunk.compressedEnd = end;
    }

    const maxNodes = limits.maxEntries * 2 + 1;
    let nextIno = 1;
    const byPath = new Map<string, MutableNode>();

    const makeNode = (name: string, entry: CheckedEntry | undefined): MutableNode => {
      if (byPath.size >= maxNodes) throw new InvalidTocError('too-many-entries', `index would exceed ${maxNodes} nodes`);
      const type: TocNodeType = entry === undefined ? 'dir' : (entry.type as TocNodeType);
      const mode = entry === undefined ? 0o755 : entry.mode;
      const chunks = entry === undefined ? [] : (filesChunks.get(entry) ?? []);
      return {
        ino: nextIno++,
        name,
        type,
        mode,
        statMode: TYPE_BITS[type] | (mode & 0o7777),
        uid: entry?.uid ?? 0,
        gid: entry?.gid ?? 0,
        userName: entry?.userName ?? '',
        groupName: entry?.groupName ?? '',
        size: type === 'reg' ? (entry?.size ?? 0) : 0,
        mtimeMs: entry?.mtimeMs,
        linkName: type === 'symlink' ? (entry?.linkName ?? '') : '',
        devMajor: type === 'char' || type === 'block' ? (entry?.devMajor ?? 0) : 0,
        devMinor: type === 'char' || type === 'block' ? (entry?.devMinor ?? 0) : 0,
        xattrs: entry?.xattrs ?? new Map(),
        digest: type === 'reg' ? entry?.digest : undefined,
        chunks,
        nlink: 0,
        implicit: entry === undefined,
        children: type === 'dir' ? new Map() : undefined,
      };
    };

    const rootEntry = explicit.get('');
    if (rootEntry !== undefined && rootEntry.type !== 'dir') fail('root-not-directory', `root entry is a ${rootEntry.type}`, rootEntry);
    const root = makeNode('', rootEntry);
    byPath.set('', root);

    // Real nodes first (hardlinks need their targets to exist), in TOC order.
    for (const [name, entry] of explicit) {
      if (name === '' || entry.type === 'hardlink') continue;
      byPath.set(name, makeNode(name, entry));
    }

    // Resolve hardlinks to the node they name, following chains of links.
    const resolved = new Map<string, MutableNode>();
    const resolveLink = (start: CheckedEntry): MutableNode => {
      const chain: CheckedEntry[] = [];
      const seen = new Set<string>();
      let current = start;
      for (;;) {
        if (seen.has(current.name)) fail('hardlink-cycle', 'hardlinks form a cycle', start);
        seen.add(current.name);
        chain.push(current);
        const target = normalizeEntryName(current.linkName, limits.maxNameBytes);
        if (!target.ok) fail(target.problem, `hardlink target ${JSON.stringify(current.linkName)} is not a clean relative path`, current);
        const known = resolved.get(target.name);
        let node: MutableNode | undefined = known;
        if (node === undefined) {
          const targetEntry = explicit.get(target.name);
          if (targetEntry === undefined) fail('hardlink-missing-target', `hardlink target ${JSON.stringify(current.linkName)} is not in the TOC`, current);
          if (targetEntry.type === 'hardlink') {
            current = targetEntry;
            continue;
          }
          node = byPath.get(target.name)!;
        }
        if (node.type === 'dir') fail('hardlink-to-directory', `hardlink target ${JSON.stringify(current.linkName)} is a directory`, current);
        for (const link of chain) resolved.set(link.name, node);
        return node;
      }
    };
    for (const [name, entry] of explicit) {
      if (entry.type !== 'hardlink') continue;
      if (name === '') fail('root-not-directory', 'root entry is a hardlink', entry);
      byPath.set(name, resolved.get(name) ?? resolveLink(entry));
    }

    // Attach every name to its parent, creating the directories the TOC implies but omits.
    const directoryFor = (dirName: string, child: CheckedEntry): MutableNode => {
      const missing: string[] = [];
      let cursor = dirName;
      let node = byPath.get(cursor);
      while (node === undefined) {
        missing.push(cursor);
        cursor = parentOf(cursor);
        node = byPath.get(cursor);
      }
      if (node.type !== 'dir') fail('parent-not-directory', `${JSON.stringify(cursor)} is a ${node.type}, not a directory`, child);
      for (let i = missing.length - 1; i >= 0; i--) {
        const name = missing[i]!;
        const dir = makeNode(name, undefined);
        byPath.set(name, dir);
        node.children!.set(baseOf(name), dir);
        node = dir;
      }
      return node;
    };
    for (const [name, entry] of explicit) {
      if (name === '') continue;
      const parent = directoryFor(parentOf(name), entry);
      parent.children!.set(baseOf(name), byPath.get(name)!);
    }

    for (const node of byPath.values()) {
      if (node.type === 'dir') {
        let subdirs = 0;
        for (const child of node.children!.values()) if (child.type === 'dir') subdirs++;
        node.nlink = 2 + subdirs;
      } else {
        node.nlink += 1; // once per name, so hardlinked nodes count all their names
      }
    }
    return new TocIndex(root, byPath, options.tocDigest, tocOffset, entries.length);
  }
}

/** The chunks of `file` that hold bytes [offset, offset + length), clamped to the file's size. */
export function chunksForRange(file: TocNode, offset: number, length: number): FileChunk[] {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`invalid range offset=${offset} length=${length}`);
  }
  const end = Math.min(offset + length, file.size);
  const chunks = file.chunks;
  if (offset >= end || chunks.length === 0) return [];
  // First chunk whose end lies beyond offset.
  let lo = 0;
  let hi = chunks.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = chunks[mid]!;
    if (c.chunkOffset + c.chunkSize <= offset) lo = mid + 1;
    else hi = mid;
  }
  const out: FileChunk[] = [];
  for (let i = lo; i < chunks.length && chunks[i]!.chunkOffset < end; i++) out.push(chunks[i]!);
  return out;
}
