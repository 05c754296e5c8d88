/**
 * The compact form of a validated TOC: what a TocIndex and a mounted layer's
 * file tree read from. A TOC can hold a million entries; as one JS object per
 * node, per chunk and per map entry that cost about 700 bytes per entry, so
 * here every per-node and per-chunk number lives in a typed array (struct of
 * arrays), names are shared strings, digests are raw bytes, and the rare
 * fields (symlink targets, device numbers, xattrs) live in sparse maps.
 * Nodes and chunks are numbered from 0; the root is node 0 (inode 1).
 *
 * Directory entries of one directory are contiguous (in TOC order), with a
 * second, name-sorted permutation for binary-search lookups.
 */
import type { DigestTable } from './digest-table.js';

export type TocNodeType = 'dir' | 'reg' | 'symlink' | 'char' | 'block' | 'fifo';

/** Node type codes, the index into this array. */
export const NODE_TYPES: readonly TocNodeType[] = ['dir', 'reg', 'symlink', 'char', 'block', 'fifo'];
export const DIR = 0;
export const REG = 1;

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

export interface DeviceNumbers {
  major: number;
  minor: number;
}

/** Per-node columns, indexed by node number. */
export interface NodeColumns {
  /** Index into NODE_TYPES. */
  type: Uint8Array;
  /** The TOC's mode value as written (may include file-type bits). */
  mode: Uint32Array;
  uid: Uint32Array;
  gid: Uint32Array;
  /** Indexes into TocTable.strings. */
  userName: Uint32Array;
  groupName: Uint32Array;
  /** Uncompressed size of regular files, 0 otherwise. */
  size: Float64Array;
  /** Modification time in ms since the epoch; NaN when the TOC had none. */
  mtimeMs: Float64Array;
  nlink: Uint32Array;
  /** 1 for directories the TOC implied but never listed. */
  implicit: Uint8Array;
  /** Whole-file digest reference into TocTable.digests, -1 when absent. */
  digest: Int32Array;
  /** The node's chunks are chunk numbers [chunkStart, chunkStart + chunkCount). */
  chunkStart: Uint32Array;
  chunkCount: Uint32Array;
  /** Directory whose entry first named this node (its canonical path's parent); the root's is itself. */
  parent: Uint32Array;
  /** Base name of the canonical path ("" for the root). */
  name: string[];
  /** Directories: their entries are dirents [direntStart, direntStart + direntCount). */
  direntStart: Uint32Array;
  direntCount: Uint32Array;
}

/** Per-chunk columns, indexed by chunk number; a file's chunks are contiguous and in file order. */
export interface ChunkColumns {
  file: Uint32Array;
  chunkOffset: Float64Array;
  chunkSize: Float64Array;
  offset: Float64Array;
  compressedEnd: Float64Array;
  innerOffset: Float64Array;
  /** Reference into TocTable.digests, -1 when absent. */
  digest: Int32Array;
}

export interface DirentColumns {
  name: string[];
  node: Uint32Array;
  /** For each directory's range, the same dirent numbers ordered by name (JS string order). */
  sorted: Uint32Array;
}

export interface TocTableInit {
  nodes: NodeColumns;
  chunks: ChunkColumns;
  dirents: DirentColumns;
  /** Chunk numbers ordered by (offset, innerOffset). */
  chunksByOffset: Uint32Array;
  strings: string[];
  digests: DigestTable;
  linkNames: Map<number, string>;
  devices: Map<number, DeviceNumbers>;
  xattrs: Map<number, ReadonlyMap<string, Buffer>>;
  /** Heap bytes of the distinct name and user/group strings. */
  stringBytes: number;
}

/**
 * Binary search of one directory's entries: `sorted[start, start + count)`
 * lists entry numbers in `names` order (JS string order). Returns the entry
 * number called `name`, or -1.
 */
export function findSortedEntry(names: readonly string[], sorted: Uint32Array, start: number, count: number, name: string): number {
  let lo = start;
  let hi = start + count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const candidate = names[sorted[mid]!]!;
    if (candidate === name) return sorted[mid]!;
    if (candidate < name) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

/** Rough V8 cost of a sparse map entry (hash table slots and the boxed value). */
const MAP_ENTRY_BYTES = 64;

export class TocTable {
  readonly nodes: NodeColumns;
  readonly chunks: ChunkColumns;
  readonly dirents: DirentColumns;
  readonly chunksByOffset: Uint32Array;
  readonly strings: readonly string[];
  readonly digests: DigestTable;
  readonly linkNames: ReadonlyMap<number, string>;
  readonly devices: ReadonlyMap<number, DeviceNumbers>;
  readonly xattrs: ReadonlyMap<number, ReadonlyMap<string, Buffer>>;
  /** An estimate of the heap this table keeps alive, for memory budgets. */
  readonly estimatedBytes: number;
  /** Heap bytes of the distinct name and user/group strings (part of the estimate). */
  readonly stringBytes: number;

  constructor(init: TocTableInit) {
    this.nodes = init.nodes;
    this.chunks = init.chunks;
    this.dirents = init.dirents;
    this.chunksByOffset = init.chunksByOffset;
    this.strings = init.strings;
    this.digests = init.digests;
    this.linkNames = init.linkNames;
    this.devices = init.devices;
    this.xattrs = init.xattrs;
    this.stringBytes = init.stringBytes;
    this.estimatedBytes = this.estimate(init.stringBytes);
  }

  get nodeCount(): number {
    return this.nodes.type.length;
  }

  get chunkCount(): number {
    return this.chunks.file.length;
  }

  get direntCount(): number {
    return this.dirents.node.length;
  }

  typeOf(node: number): TocNodeType {
    return NODE_TYPES[this.nodes.type[node]!]!;
  }

  isDir(node: number): boolean {
    return this.nodes.type[node] === DIR;
  }

  /** The dirent of `dir` called `name`, or -1: a binary search over the directory's sorted entries. */
  findDirent(dir: number, name: string): number {
    return findSortedEntry(this.dirents.name, this.dirents.sorted, this.nodes.direntStart[dir]!, this.nodes.direntCount[dir]!, name);
  }

  /** The node `name` names in directory `dir`, or -1. */
  findChild(dir: number, name: string): number {
    if (!this.isDir(dir)) return -1;
    const dirent = this.findDirent(dir, name);
    return dirent < 0 ? -1 : this.dirents.node[dirent]!;
  }

  /** The node at a clean relative path ("" is the root), or -1. */
  resolve(cleanPath: string): number {
    if (cleanPath === '') return 0;
    let node = 0;
    for (const part of cleanPath.split('/')) {
      node = this.findChild(node, part);
      if (node < 0) return -1;
    }
    return node;
  }

  /** The canonical path of a node, rebuilt from its parents. */
  pathOf(node: number): string {
    const parts: string[] = [];
    for (let cursor = node; cursor !== 0; cursor = this.nodes.parent[cursor]!) parts.push(this.nodes.name[cursor]!);
    return parts.reverse().join('/');
  }

  /** A chunk as an object: made on demand, so a layer keeps no object per chunk. */
  chunk(c: number): FileChunk {
    const { chunks } = this;
    const digest = chunks.digest[c]!;
    return {
      fileName: this.pathOf(chunks.file[c]!),
      chunkOffset: chunks.chunkOffset[c]!,
      chunkSize: chunks.chunkSize[c]!,
      offset: chunks.offset[c]!,
      compressedEnd: chunks.compressedEnd[c]!,
      innerOffset: chunks.innerOffset[c]!,
      chunkDigest: digest < 0 ? undefined : this.digests.get(digest),
    };
  }

  /**
   * The chunks stored right after the spot (offset, innerOffset) in the
   * blob, in blob order, as long as their compressed data ends by maxEnd:
   * at most maxCount of them.
   */
  chunksAfter(offset: number, innerOffset: number, maxEnd: number, maxCount: number): number[] {
    const order = this.chunksByOffset;
    const { offset: offsets, innerOffset: inners, compressedEnd } = this.chunks;
    // First position in blob order past the spot.
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = order[mid]!;
      if (offsets[c]! < offset || (offsets[c] === offset && inners[c]! <= innerOffset)) lo = mid + 1;
      else hi = mid;
    }
    const out: number[] = [];
    for (let at = lo; at < order.length && out.length < maxCount && compressedEnd[order[at]!]! <= maxEnd; at++) out.push(order[at]!);
    return out;
  }

  /** Chunk numbers [from, to) of `node` holding bytes [offset, end), end already clamped to the file's size. */
  chunkRange(node: number, offset: number, end: number): [number, number] {
    const start = this.nodes.chunkStart[node]!;
    const stop = start + this.nodes.chunkCount[node]!;
    if (offset >= end || start === stop) return [start, start];
    const { chunkOffset, chunkSize } = this.chunks;
    // First chunk whose end lies beyond offset.
    let lo = start;
    let hi = stop;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (chunkOffset[mid]! + chunkSize[mid]! <= offset) lo = mid + 1;
      else hi = mid;
    }
    let to = lo;
    while (to < stop && chunkOffset[to]! < end) to++;
    return [lo, to];
  }

  private estimate(stringBytes: number): number {
    const columns = [...Object.values(this.nodes), ...Object.values(this.chunks), ...Object.values(this.dirents), this.chunksByOffset];
    let bytes = stringBytes + this.digests.byteLength;
    for (const column of columns) bytes += Array.isArray(column) ? column.length * 8 : (column as Uint8Array).byteLength;
    for (const target of this.linkNames.values()) bytes += MAP_ENTRY_BYTES + 24 + target.length;
    bytes += this.devices.size * (MAP_ENTRY_BYTES + 32);
    for (const xattrs of this.xattrs.values()) {
      bytes += MAP_ENTRY_BYTES * (1 + xattrs.size);
      for (const [key, value] of xattrs) bytes += 24 + key.length + 96 + value.length;
    }
    return bytes;
  }
}
