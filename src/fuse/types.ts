/**
 * What the FUSE filesystem needs from a layer: a read-only tree of nodes
 * and a way to read a regular file's bytes. src/layer implements it over an
 * eStargz TOC and verified chunk fetches; the filesystem knows nothing of
 * eStargz or registries.
 */
export type NodeType = 'dir' | 'reg' | 'symlink' | 'char' | 'block' | 'fifo';

export interface FsNode {
  /** Inode number, unique per layer; hardlinks share their target's node and ino. */
  ino: number;
  type: NodeType;
  /** Permission and special bits (07777); the file-type bits come from type. */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes for regular files, target length for symlinks, 0 otherwise. */
  size: number;
  mtimeMs: number;
  /** Number of names for this node (hardlinks); directories: 2 + subdirectories. */
  nlink: number;
  /** Symlink target. */
  linkName?: string;
  devMajor?: number;
  devMinor?: number;
  /** Extended attributes, e.g. trusted.overlay.opaque = "y" on opaque directories. */
  xattrs: Map<string, Buffer>;
  /** Directory entries by name (directories only). */
  children?: Map<string, FsNode>;
}

export interface LayerContent {
  root: FsNode;
  /** The node at an absolute path inside the layer ("/", "/etc/passwd"), undefined when absent. */
  lookup(path: string): FsNode | undefined;
  /**
   * Reads up to length bytes of a regular file from offset. Must reject
   * (never hang, never return wrong bytes) when the data cannot be fetched or
   * verified; the filesystem turns a rejection into EIO.
   */
  read(node: FsNode, offset: number, length: number): Promise<Buffer>;
  /** Total size of the layer's files, for statfs. */
  totalSize: number;
  /**
   * Distinct inodes, for statfs. When absent the filesystem counts them by
   * walking the tree once, which for a million-entry layer means a million
   * node objects.
   */
  inodeCount?: number;
}
