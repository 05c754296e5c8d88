/**
 * The file tree a mounted layer shows, derived from the TOC index.
 *
 * The layer is mounted as a lower directory of an overlay, so it must look like
 * what containerd's overlayfs snapshotter would have unpacked from the same tar:
 * - the eStargz bookkeeping entries (landmarks, the TOC itself) are not files of
 *   the image and are hidden;
 * - OCI whiteouts `.wh.NAME` become what overlayfs understands as a whiteout: a
 *   character device 0/0 named NAME;
 * - an opaque marker `.wh..wh..opq` becomes the `trusted.overlay.opaque=y` xattr
 *   on its directory.
 * Hardlinked names share one inode, with nlink counting the names that are
 * visible.
 *
 * A TOC may list a million entries, so the tree keeps no object per node: it
 * holds its own directory listings (what is visible, under which name) in typed
 * arrays over the index's tables, and makes an FsNode when one is looked up.
 */
import { NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, TOC_TAR_NAME, findSortedEntry, type TocIndex, type TocNode, type TocTable } from '../estargz/index.js';
import type { FsNode, NodeType } from '../fuse/types.js';

export const WHITEOUT_PREFIX = '.wh.';
/** aufs-era metadata (`.wh..wh..opq`, `.wh..wh.plnk`, ...): never files of the image. */
export const WHITEOUT_META_PREFIX = '.wh..wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';
export const OPAQUE_XATTR = 'trusted.overlay.opaque';
const HIDDEN_IN_ROOT: ReadonlySet<string> = new Set([PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK, TOC_TAR_NAME]);

const NO_XATTRS = new Map<string, Buffer>();
const OPAQUE_VALUE = Buffer.from('y');

/** A node of the tree, read from the tables on each access. Whiteouts have negative ids. */
class LayerNode implements FsNode {
  constructor(
    readonly tree: FsTree,
    /** TOC node number, or -(whiteout number + 1). */
    readonly id: number,
  ) {}

  private get table(): TocTable {
    return this.tree.table;
  }

  get ino(): number {
    return this.id >= 0 ? this.id + 1 : this.tree.firstWhiteoutIno - this.id - 1;
  }

  get type(): NodeType {
    return this.id >= 0 ? this.table.typeOf(this.id) : 'char';
  }

  get mode(): number {
    return this.id >= 0 ? this.table.nodes.mode[this.id]! & 0o7777 : 0;
  }

  get uid(): number {
    return this.id >= 0 ? this.table.nodes.uid[this.id]! : 0;
  }

  get gid(): number {
    return this.id >= 0 ? this.table.nodes.gid[this.id]! : 0;
  }

  get size(): number {
    if (this.id < 0) return 0;
    const type = this.type;
    if (type === 'reg') return this.table.nodes.size[this.id]!;
    return type === 'symlink' ? Buffer.byteLength(this.linkName ?? '') : 0;
  }

  get mtimeMs(): number {
    const ms = this.id >= 0 ? this.table.nodes.mtimeMs[this.id]! : this.tree.whiteoutMtimeMs(-this.id - 1);
    return Number.isNaN(ms) ? 0 : ms;
  }

  get nlink(): number {
    return this.id >= 0 ? this.tree.nlinkOf(this.id) : 1;
  }

  get linkName(): string | undefined {
    return this.id >= 0 && this.type === 'symlink' ? (this.table.linkNames.get(this.id) ?? '') : undefined;
  }

  get devMajor(): number | undefined {
    if (this.id < 0) return 0;
    const type = this.type;
    return type === 'char' || type === 'block' ? (this.table.devices.get(this.id)?.major ?? 0) : undefined;
  }

  get devMinor(): number | undefined {
    if (this.id < 0) return 0;
    const type = this.type;
    return type === 'char' || type === 'block' ? (this.table.devices.get(this.id)?.minor ?? 0) : undefined;
  }

  get xattrs(): Map<string, Buffer> {
    if (this.id < 0) return NO_XATTRS;
    const own = this.table.xattrs.get(this.id);
    if (!this.tree.isOpaque(this.id)) return (own as Map<string, Buffer> | undefined) ?? NO_XATTRS;
    return new Map([...(own ?? []), [OPAQUE_XATTR, OPAQUE_VALUE]]);
  }

  get children(): Map<string, FsNode> | undefined {
    return this.id >= 0 && this.table.isDir(this.id) ? this.tree.childrenOf(this.id) : undefined;
  }
}

export class FsTree {
  readonly root: FsNode;
  /** Bytes of all distinct regular files (hardlinks counted once), for statfs. */
  readonly totalSize: number;
  /** Distinct TOC nodes in the tree. */
  readonly nodeCount: number;
  /** Distinct inodes in the tree, whiteouts included (statfs f_files). */
  readonly inodeCount: number;
  /** Estimated heap bytes the tree keeps alive beyond its index, for memory budgets. */
  readonly estimatedBytes: number;
  /** @internal */
  readonly table: TocTable;
  /** @internal Whiteout number k has inode firstWhiteoutIno + k. */
  readonly firstWhiteoutIno: number;
  /** Per TOC node: visible entries [start, start + count) of `entryName`/`entryTarget` (directories only). */
  private readonly start: Uint32Array;
  private readonly count: Uint32Array;
  private readonly entryName: string[];
  /** TOC node number, or -(whiteout number + 1). */
  private readonly entryTarget: Int32Array;
  /** Per directory's range, entry numbers ordered by name. */
  private readonly sorted: Uint32Array;
  /** Visible names per non-directory node; 2 + visible subdirectories per directory. */
  private readonly nlink: Uint32Array;
  private readonly opaque: ReadonlySet<number>;
  private readonly whiteoutMtimes: Float64Array;

  private readonly index: TocIndex;

  private constructor(index: TocIndex) {
    const table = index.table;
    this.index = index;
    this.table = table;
    this.firstWhiteoutIno = table.nodeCount + 1;
    const built = buildListings(table);
    this.start = built.start;
    this.count = built.count;
    this.entryName = built.entryName;
    this.entryTarget = built.entryTarget;
    this.sorted = built.sorted;
    this.nlink = built.nlink;
    this.opaque = built.opaque;
    this.whiteoutMtimes = built.whiteoutMtimes;
    this.totalSize = built.totalSize;
    this.nodeCount = built.nodeCount;
    this.inodeCount = built.nodeCount + built.whiteoutMtimes.length;
    this.estimatedBytes = this.start.byteLength + this.count.byteLength + this.entryName.length * 8 + this.entryTarget.byteLength
      + this.sorted.byteLength + this.nlink.byteLength + this.whiteoutMtimes.byteLength + this.opaque.size * 64
      + built.whiteoutNameBytes;
    this.root = new LayerNode(this, 0);
  }

  /** The node at a path inside the layer ("/", "/etc/passwd"; "." and empty parts are ignored, ".." is not resolved). */
  lookup(path: string): FsNode | undefined {
    let id = 0;
    for (const part of path.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..' || id < 0 || !this.table.isDir(id)) return undefined;
      const entry = this.findEntry(id, part);
      if (entry < 0) return undefined;
      id = this.entryTarget[entry]!;
    }
    return new LayerNode(this, id);
  }

  /** The TOC node (with its chunks) behind a node of this tree; undefined for whiteouts and nodes of other trees. */
  tocNodeOf(node: FsNode): TocNode | undefined {
    if (!(node instanceof LayerNode) || node.tree !== this || node.id < 0) return undefined;
    return this.index.nodeByIno(node.id + 1);
  }

  /** @internal */
  nlinkOf(id: number): number {
    return this.nlink[id]!;
  }

  /** @internal */
  isOpaque(id: number): boolean {
    return this.opaque.has(id);
  }

  /** @internal */
  whiteoutMtimeMs(whiteout: number): number {
    return this.whiteoutMtimes[whiteout]!;
  }

  /** @internal A new map of a directory's visible entries, in TOC order. */
  childrenOf(id: number): Map<string, FsNode> {
    const out = new Map<string, FsNode>();
    const start = this.start[id]!;
    for (let e = start; e < start + this.count[id]!; e++) out.set(this.entryName[e]!, new LayerNode(this, this.entryTarget[e]!));
    return out;
  }

  private findEntry(dir: number, name: string): number {
    return findSortedEntry(this.entryName, this.sorted, this.start[dir]!, this.count[dir]!, name);
  }

  static fromIndex(index: TocIndex): FsTree {
    return new FsTree(index);
  }
}

interface Listings {
  start: Uint32Array;
  count: Uint32Array;
  entryName: string[];
  entryTarget: Int32Array;
  sorted: Uint32Array;
  nlink: Uint32Array;
  opaque: Set<number>;
  whiteoutMtimes: Float64Array;
  whiteoutNameBytes: number;
  totalSize: number;
  nodeCount: number;
}

/** Walks the TOC tree from the root and records what each directory shows. */
function buildListings(table: TocTable): Listings {
  const { nodes, dirents } = table;
  const start = new Uint32Array(table.nodeCount);
  const count = new Uint32Array(table.nodeCount);
  const nlink = new Uint32Array(table.nodeCount);
  const seen = new Uint8Array(table.nodeCount);
  const entryName: string[] = [];
  const targets: number[] = [];
  const whiteoutMtimes: number[] = [];
  const opaque = new Set<number>();
  let whiteoutNameBytes = 0;
  let totalSize = 0;
  let nodeCount = 0;

  const visit = (id: number): void => {
    if (seen[id] === 1) return;
    seen[id] = 1;
    nodeCount++;
    if (nodes.type[id] === 1) totalSize += nodes.size[id]!;
  };
  visit(0);
  const stack = [0];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    start[dir] = entryName.length;
    let subdirs = 0;
    const first = nodes.direntStart[dir]!;
    for (let d = first; d < first + nodes.direntCount[dir]!; d++) {
      const name = dirents.name[d]!;
      const child = dirents.node[d]!;
      if (dir === 0 && HIDDEN_IN_ROOT.has(name)) continue;
      if (name === OPAQUE_WHITEOUT) {
        opaque.add(dir);
        continue;
      }
      if (name.startsWith(WHITEOUT_META_PREFIX)) continue;
      if (name.startsWith(WHITEOUT_PREFIX) && name.length > WHITEOUT_PREFIX.length) {
        const target = name.slice(WHITEOUT_PREFIX.length);
        // A tar that both deletes and adds a name in one layer means "the new one": keep the real entry.
        if (table.findDirent(dir, target) >= 0) continue;
        entryName.push(target);
        whiteoutNameBytes += 24 + target.length * 2;
        targets.push(-whiteoutMtimes.push(nodes.mtimeMs[child]!));
        continue;
      }
      entryName.push(name);
      targets.push(child);
      visit(child);
      if (nodes.type[child] === 0) {
        subdirs++;
        stack.push(child);
      } else {
        nlink[child]!++;
      }
    }
    count[dir] = entryName.length - start[dir]!;
    nlink[dir] = 2 + subdirs;
  }

  const entryTarget = Int32Array.from(targets);
  const sorted = new Uint32Array(entryName.length);
  for (let i = 0; i < sorted.length; i++) sorted[i] = i;
  for (let dir = 0; dir < table.nodeCount; dir++) {
    if (count[dir]! > 1) sorted.subarray(start[dir]!, start[dir]! + count[dir]!).sort((a, b) => (entryName[a]! < entryName[b]! ? -1 : entryName[a]! > entryName[b]! ? 1 : 0));
  }
  return { start, count, entryName, entryTarget, sorted, nlink, opaque, whiteoutMtimes: Float64Array.from(whiteoutMtimes), whiteoutNameBytes, totalSize, nodeCount };
}
