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
 * Hardlinked names share one FsNode (one inode), with nlink counting the names
 * that are visible.
 */
import { NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, TOC_TAR_NAME, type TocIndex, type TocNode } from '../estargz/index.js';
import type { FsNode } from '../fuse/types.js';

export const WHITEOUT_PREFIX = '.wh.';
/** aufs-era metadata (`.wh..wh..opq`, `.wh..wh.plnk`, ...): never files of the image. */
export const WHITEOUT_META_PREFIX = '.wh..wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';
export const OPAQUE_XATTR = 'trusted.overlay.opaque';
const HIDDEN_IN_ROOT: ReadonlySet<string> = new Set([PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK, TOC_TAR_NAME]);

export class FsTree {
  readonly root: FsNode;
  /** Bytes of all distinct regular files (hardlinks counted once), for statfs. */
  readonly totalSize: number;
  /** Distinct nodes in the tree. */
  readonly nodeCount: number;
  private readonly tocNodes: ReadonlyMap<FsNode, TocNode>;

  private constructor(root: FsNode, tocNodes: ReadonlyMap<FsNode, TocNode>, totalSize: number, nodeCount: number) {
    this.root = root;
    this.tocNodes = tocNodes;
    this.totalSize = totalSize;
    this.nodeCount = nodeCount;
  }

  /** The node at a path inside the layer ("/", "/etc/passwd"; "." and empty parts are ignored, ".." is not resolved). */
  lookup(path: string): FsNode | undefined {
    let node: FsNode | undefined = this.root;
    for (const part of path.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') return undefined;
      node = node.children?.get(part);
      if (node === undefined) return undefined;
    }
    return node;
  }

  /** The TOC node (with its chunks) behind a regular file of this tree; undefined for nodes of other trees. */
  tocNodeOf(node: FsNode): TocNode | undefined {
    return this.tocNodes.get(node);
  }

  static fromIndex(index: TocIndex): FsTree {
    let maxIno = 0;
    for (const [, node] of index.paths()) maxIno = Math.max(maxIno, node.ino);
    // Whiteout nodes have no TOC node of their own; number them after the TOC's.
    let nextIno = maxIno + 1;
    const converted = new Map<TocNode, FsNode>();
    const tocNodes = new Map<FsNode, TocNode>();
    const names = new Map<FsNode, number>();
    let totalSize = 0;

    const countName = (node: FsNode): void => {
      names.set(node, (names.get(node) ?? 0) + 1);
    };

    const convert = (toc: TocNode, isRoot: boolean): FsNode => {
      const known = converted.get(toc);
      if (known !== undefined) return known;
      const node: FsNode = {
        ino: toc.ino,
        type: toc.type,
        mode: toc.statMode & 0o7777,
        uid: toc.uid,
        gid: toc.gid,
        size: toc.type === 'reg' ? toc.size : toc.type === 'symlink' ? Buffer.byteLength(toc.linkName) : 0,
        mtimeMs: toc.mtimeMs ?? 0,
        nlink: 1,
        xattrs: new Map(toc.xattrs),
      };
      if (toc.type === 'symlink') node.linkName = toc.linkName;
      if (toc.type === 'char' || toc.type === 'block') {
        node.devMajor = toc.devMajor;
        node.devMinor = toc.devMinor;
      }
      converted.set(toc, node);
      tocNodes.set(node, toc);
      if (toc.type === 'reg') totalSize += toc.size;
      if (toc.type !== 'dir') return node;

      const children = new Map<string, FsNode>();
      node.children = children;
      const tocChildren = toc.children ?? new Map<string, TocNode>();
      let subdirs = 0;
      for (const [name, child] of tocChildren) {
        if (isRoot && HIDDEN_IN_ROOT.has(name)) continue;
        if (name === OPAQUE_WHITEOUT) {
          node.xattrs.set(OPAQUE_XATTR, Buffer.from('y'));
          continue;
        }
        if (name.startsWith(WHITEOUT_META_PREFIX)) continue;
        if (name.startsWith(WHITEOUT_PREFIX) && name.length > WHITEOUT_PREFIX.length) {
          const target = name.slice(WHITEOUT_PREFIX.length);
          // A tar that both deletes and adds a name in one layer means "the new one": keep the real entry.
          if (tocChildren.has(target)) continue;
          const whiteout: FsNode = {
            ino: nextIno++, type: 'char', mode: 0, uid: 0, gid: 0, size: 0, mtimeMs: child.mtimeMs ?? 0, nlink: 1,
            devMajor: 0, devMinor: 0, xattrs: new Map(),
          };
          children.set(target, whiteout);
          continue;
        }
        const fsChild = convert(child, false);
        children.set(name, fsChild);
        if (fsChild.type === 'dir') subdirs++;
        else countName(fsChild);
      }
      node.nlink = 2 + subdirs;
      return node;
    };

    const root = convert(index.root, true);
    for (const [node, count] of names) node.nlink = count;
    return new FsTree(root, tocNodes, totalSize, converted.size);
  }
}
