// An in-memory LayerContent for the FUSE tests: a tree described by a flat
// list of entries, with hooks to make reads slow, failing or short.
import type { FsNode, LayerContent, NodeType } from '../../../src/fuse/types.js';

export interface EntrySpec {
  /** Absolute path inside the layer; missing parent directories are created (0755, root). */
  path: string;
  type: NodeType | 'hardlink';
  mode?: number;
  uid?: number;
  gid?: number;
  mtimeMs?: number;
  /** Regular file bytes. */
  data?: Buffer | string;
  /** Symlink target, or for a hardlink the path of the file it links to. */
  linkName?: string;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, Buffer | string>;
}

export interface ReadCall {
  path: string;
  offset: number;
  length: number;
}

export interface MemoryLayerOptions {
  /**
   * Called before every read; may delay or throw (a rejection becomes the
   * read's rejection).
   */
  beforeRead?: (path: string, offset: number, length: number) => Promise<void> | void;
  /**
   * Answer at most up to the next multiple of this many bytes, as a chunked
   * layer would; the filesystem must ask again for the rest.
   */
  chunkSize?: number;
}

export interface MemoryLayer extends LayerContent {
  /** Every read the filesystem made, in order. */
  readonly reads: ReadCall[];
  /** Path of each node (the first name, for hardlinks). */
  readonly paths: Map<FsNode, string>;
  dataOf(path: string): Buffer;
}

const DEFAULT_MTIME = Date.UTC(2024, 0, 2, 3, 4, 5);

export function buildLayer(entries: EntrySpec[], options: MemoryLayerOptions = {}): MemoryLayer {
  let nextIno = 1;
  const data = new Map<FsNode, Buffer>();
  const paths = new Map<FsNode, string>();
  const makeDir = (): FsNode => ({
    ino: nextIno++,
    type: 'dir',
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    mtimeMs: DEFAULT_MTIME,
    nlink: 2,
    xattrs: new Map(),
    children: new Map(),
  });
  const root = makeDir();
  paths.set(root, '/');

  const lookup = (path: string): FsNode | undefined => {
    let node: FsNode | undefined = root;
    for (const part of path.split('/')) {
      if (part === '') continue;
      node = node?.children?.get(part);
      if (!node) return undefined;
    }
    return node;
  };

  const ensureDir = (path: string): FsNode => {
    let node = root;
    let sofar = '';
    for (const part of path.split('/')) {
      if (part === '') continue;
      sofar += `/${part}`;
      let child = node.children?.get(part);
      if (!child) {
        child = makeDir();
        node.children?.set(part, child);
        node.nlink++;
        paths.set(child, sofar);
      }
      if (child.type !== 'dir') throw new Error(`${sofar} is not a directory`);
      node = child;
    }
    return node;
  };

  for (const spec of entries) {
    const slash = spec.path.lastIndexOf('/');
    const parentPath = spec.path.slice(0, slash) || '/';
    const name = spec.path.slice(slash + 1);
    const parent = ensureDir(parentPath);
    if (spec.type === 'hardlink') {
      const target = lookup(spec.linkName ?? '');
      if (!target || target.type === 'dir') throw new Error(`bad hardlink target ${spec.linkName}`);
      target.nlink++;
      parent.children?.set(name, target);
      continue;
    }
    let node: FsNode;
    if (spec.type === 'dir') {
      node = ensureDir(spec.path);
    } else {
      node = {
        ino: nextIno++,
        type: spec.type,
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: 0,
        mtimeMs: DEFAULT_MTIME,
        nlink: 1,
        xattrs: new Map(),
      };
      parent.children?.set(name, node);
      paths.set(node, spec.path);
    }
    if (spec.mode !== undefined) node.mode = spec.mode;
    if (spec.uid !== undefined) node.uid = spec.uid;
    if (spec.gid !== undefined) node.gid = spec.gid;
    if (spec.mtimeMs !== undefined) node.mtimeMs = spec.mtimeMs;
    for (const [key, value] of Object.entries(spec.xattrs ?? {})) node.xattrs.set(key, Buffer.from(value));
    if (spec.type === 'reg') {
      const bytes = Buffer.from(spec.data ?? '');
      data.set(node, bytes);
      node.size = bytes.length;
    } else if (spec.type === 'symlink') {
      node.linkName = spec.linkName ?? '';
      node.size = Buffer.byteLength(node.linkName);
    } else if (spec.type === 'char' || spec.type === 'block') {
      node.devMajor = spec.devMajor ?? 0;
      node.devMinor = spec.devMinor ?? 0;
    }
  }

  const reads: ReadCall[] = [];
  let totalSize = 0;
  for (const bytes of data.values()) totalSize += bytes.length;

  return {
    root,
    lookup,
    totalSize,
    reads,
    paths,
    dataOf(path: string): Buffer {
      const node = lookup(path);
      const bytes = node && data.get(node);
      if (!bytes) throw new Error(`no regular file at ${path}`);
      return bytes;
    },
    async read(node: FsNode, offset: number, length: number): Promise<Buffer> {
      const path = paths.get(node) ?? '?';
      reads.push({ path, offset, length });
      await options.beforeRead?.(path, offset, length);
      const bytes = data.get(node);
      if (!bytes) throw new Error(`not a regular file: ${path}`);
      let end = Math.min(offset + length, bytes.length);
      if (options.chunkSize) end = Math.min(end, (Math.floor(offset / options.chunkSize) + 1) * options.chunkSize);
      // A copy, like a real layer's freshly fetched buffer.
      return Buffer.from(bytes.subarray(offset, end));
    },
  };
}
