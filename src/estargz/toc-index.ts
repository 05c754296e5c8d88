import { NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK } from './constants.js';
import { cleanLookupPath } from './names.js';
import { TocBuilder, type TocIndexBuildOptions } from './toc-builder.js';
import { DIR, REG, TocTable, type FileChunk, type TocNodeType } from './toc-table.js';
import type { CheckedEntry } from './validate.js';

export type { FileChunk, TocNodeType } from './toc-table.js';
export type { TocIndexBuildOptions } from './toc-builder.js';

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
  /** Chunks in file order, tiling [0, size) exactly; empty for empty and non-regular files. Made on each access. */
  readonly chunks: readonly FileChunk[];
  /** Link count: names for non-directories, 2 + subdirectories for directories. */
  readonly nlink: number;
  /** True for directories the TOC never listed but whose descendants it did. */
  readonly implicit: boolean;
  /** Children by base name, in TOC order; undefined for non-directories. Made on each access. */
  readonly children: ReadonlyMap<string, TocNode> | undefined;
}

const TYPE_BITS: Readonly<Record<TocNodeType, number>> = {
  dir: 0o040000, reg: 0o100000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000,
};

const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();

/**
 * A TocNode read from the index's tables when asked: the index keeps no object
 * per node. Two lookups of one node give two views with the same ino.
 */
class TocNodeView implements TocNode {
  constructor(
    readonly table: TocTable,
    /** Node number in the table (ino - 1). */
    readonly id: number,
  ) {}

  get ino(): number {
    return this.id + 1;
  }

  get name(): string {
    return this.table.pathOf(this.id);
  }

  get type(): TocNodeType {
    return this.table.typeOf(this.id);
  }

  get mode(): number {
    return this.table.nodes.mode[this.id]!;
  }

  get statMode(): number {
    return TYPE_BITS[this.type] | (this.mode & 0o7777);
  }

  get uid(): number {
    return this.table.nodes.uid[this.id]!;
  }

  get gid(): number {
    return this.table.nodes.gid[this.id]!;
  }

  get userName(): string {
    return this.table.strings[this.table.nodes.userName[this.id]!]!;
  }

  get groupName(): string {
    return this.table.strings[this.table.nodes.groupName[this.id]!]!;
  }

  get size(): number {
    return this.table.nodes.size[this.id]!;
  }

  get mtimeMs(): number | undefined {
    const ms = this.table.nodes.mtimeMs[this.id]!;
    return Number.isNaN(ms) ? undefined : ms;
  }

  get linkName(): string {
    return this.table.linkNames.get(this.id) ?? '';
  }

  get devMajor(): number {
    return this.table.devices.get(this.id)?.major ?? 0;
  }

  get devMinor(): number {
    return this.table.devices.get(this.id)?.minor ?? 0;
  }

  get xattrs(): ReadonlyMap<string, Buffer> {
    return this.table.xattrs.get(this.id) ?? NO_XATTRS;
  }

  get digest(): string | undefined {
    const ref = this.table.nodes.digest[this.id]!;
    return ref < 0 ? undefined : this.table.digests.get(ref);
  }

  get chunks(): readonly FileChunk[] {
    const start = this.table.nodes.chunkStart[this.id]!;
    const out: FileChunk[] = [];
    for (let c = start; c < start + this.table.nodes.chunkCount[this.id]!; c++) out.push(this.table.chunk(c));
    return out;
  }

  get nlink(): number {
    return this.table.nodes.nlink[this.id]!;
  }

  get implicit(): boolean {
    return this.table.nodes.implicit[this.id] === 1;
  }

  get children(): ReadonlyMap<string, TocNode> | undefined {
    if (!this.table.isDir(this.id)) return undefined;
    const { nodes, dirents } = this.table;
    const out = new Map<string, TocNode>();
    const start = nodes.direntStart[this.id]!;
    for (let d = start; d < start + nodes.direntCount[this.id]!; d++) out.set(dirents.name[d]!, new TocNodeView(this.table, dirents.node[d]!));
    return out;
  }
}

export type Landmark = 'prefetch' | 'no-prefetch';

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
  /** The compact tables behind the index, for readers that walk many nodes (a layer's file tree). */
  readonly table: TocTable;

  private constructor(table: TocTable, tocDigest: string, tocOffset: number, entryCount: number) {
    this.table = table;
    this.root = new TocNodeView(table, 0);
    this.tocDigest = tocDigest;
    this.tocOffset = tocOffset;
    this.entryCount = entryCount;
    const prefetch = table.findChild(0, PREFETCH_LANDMARK);
    const noPrefetch = table.findChild(0, NO_PREFETCH_LANDMARK);
    if (noPrefetch >= 0 && table.nodes.type[noPrefetch] === REG) {
      this.landmark = 'no-prefetch';
    } else if (prefetch >= 0 && table.nodes.type[prefetch] === REG) {
      this.landmark = 'prefetch';
      const first = table.nodes.chunkCount[prefetch]! > 0 ? table.nodes.chunkStart[prefetch]! : -1;
      this.prefetchEnd = first < 0 ? 0 : table.chunks.offset[first]!;
    }
  }

  /** Looks a path up the way stargz-snapshotter does: "/a/b", "./a/b" and "a/b/" are the same; "" is the root. */
  lookup(path: string): TocNode | undefined {
    const node = this.table.resolve(cleanLookupPath(path));
    return node < 0 ? undefined : new TocNodeView(this.table, node);
  }

  /** The node with inode number `ino`, if there is one. */
  nodeByIno(ino: number): TocNode | undefined {
    return Number.isInteger(ino) && ino >= 1 && ino <= this.table.nodeCount ? new TocNodeView(this.table, ino - 1) : undefined;
  }

  /** Every path (hardlink names and implied directories included) with its node, the root first, depth first. */
  *paths(): IterableIterator<[string, TocNode]> {
    const { nodes, dirents } = this.table;
    yield ['', this.root];
    const stack: Array<[number, string]> = [[0, '']];
    while (stack.length > 0) {
      const [dir, prefix] = stack.pop()!;
      const start = nodes.direntStart[dir]!;
      for (let d = start; d < start + nodes.direntCount[dir]!; d++) {
        const node = dirents.node[d]!;
        const path = prefix === '' ? dirents.name[d]! : `${prefix}/${dirents.name[d]!}`;
        yield [path, new TocNodeView(this.table, node)];
        if (nodes.type[node] === DIR) stack.push([node, path]);
      }
    }
  }

  get pathCount(): number {
    return this.table.direntCount + 1;
  }

  get chunkCount(): number {
    return this.table.chunkCount;
  }

  /** Estimated heap bytes the index keeps alive. */
  get estimatedBytes(): number {
    return this.table.estimatedBytes;
  }

  /**
   * All chunks of all files, ordered by compressed offset (for prefetch and
   * background fetch). A new array of new objects on every call: prefer
   * chunksByOffset() to walk them without holding them all.
   */
  allChunks(): FileChunk[] {
    return [...this.chunksByOffset()];
  }

  /** The chunks of all files, ordered by compressed offset, made one at a time. */
  *chunksByOffset(): IterableIterator<FileChunk> {
    for (const c of this.table.chunksByOffset) yield this.table.chunk(c);
  }

  /**
   * The chunks stored right after `chunk` in the blob (of any file), in blob
   * order, whose compressed data ends by `maxEnd`: at most `maxCount`.
   */
  chunksAfter(chunk: FileChunk, maxEnd: number, maxCount: number): FileChunk[] {
    return this.table.chunksAfter(chunk.offset, chunk.innerOffset, maxEnd, maxCount).map((c) => this.table.chunk(c));
  }

  /** The chunks of `file` that hold bytes [offset, offset + length), clamped to the file's size. */
  chunksForRange(file: TocNode, offset: number, length: number): FileChunk[] {
    return chunksForRange(file, offset, length);
  }

  /** An index over a table built elsewhere (another thread: see toc-transfer.ts). */
  static fromTable(table: TocTable, tocDigest: string, tocOffset: number, entryCount: number): TocIndex {
    return new TocIndex(table, tocDigest, tocOffset, entryCount);
  }

  /** Builds an index from type-checked entries, enforcing every rule that spans entries. */
  static build(entries: Iterable<CheckedEntry>, options: TocIndexBuildOptions): TocIndex {
    const builder = new TocBuilder(options);
    for (const entry of entries) builder.add(entry);
    const { table, entryCount } = builder.finish();
    return new TocIndex(table, options.tocDigest, options.tocOffset, entryCount);
  }
}

/** The chunks of `file` that hold bytes [offset, offset + length), clamped to the file's size. */
export function chunksForRange(file: TocNode, offset: number, length: number): FileChunk[] {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new RangeError(`invalid range offset=${offset} length=${length}`);
  }
  const end = Math.min(offset + length, file.size);
  if (file instanceof TocNodeView) {
    // Straight from the tables: only the chunks in range become objects.
    const [from, to] = file.table.chunkRange(file.id, offset, end);
    const out: FileChunk[] = [];
    for (let c = from; c < to; c++) out.push(file.table.chunk(c));
    return out;
  }
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
