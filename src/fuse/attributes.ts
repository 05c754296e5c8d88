// Turns an FsNode into the struct-stat fields the kernel sees.
import type Fuse from 'fuse-native';
import type { FsNode, NodeType } from './types.js';

// File-type bits of st_mode (S_IFDIR, S_IFREG, ...). FsNode.mode carries only
// the permission and special bits; the kind of file comes from its type.
const TYPE_BITS: Record<NodeType, number> = {
  dir: 0o040000,
  reg: 0o100000,
  symlink: 0o120000,
  char: 0o020000,
  block: 0o060000,
  fifo: 0o010000,
};

export const BLOCK_SIZE = 4096;

export function fileMode(node: FsNode): number {
  return TYPE_BITS[node.type] | (node.mode & 0o7777);
}

/**
 * glibc's makedev() restricted to 32 bits. fuse-native hands st_rdev over as
 * a uint32 and the FUSE protocol's attr.rdev is 32 bits too; the kernel
 * decodes it with new_decode_dev (12-bit major, 20-bit minor), which is this
 * same encoding, so every device number Linux can represent over FUSE
 * round-trips.
 */
export function makedev(major: number, minor: number): number {
  return (((minor & 0xfff00) << 12) | ((major & 0xfff) << 8) | (minor & 0xff)) >>> 0;
}

export function nodeStat(node: FsNode): Fuse.Stat {
  // fuse-native replaces a falsy time with Date.now(), which would turn the
  // epoch mtimes of reproducible builds into "now"; a Date object avoids
  // that. It cannot carry times before 1970 (unsigned milliseconds), so those
  // clamp to the epoch.
  const time = new Date(Math.max(0, Math.floor(node.mtimeMs)));
  const isDevice = node.type === 'char' || node.type === 'block';
  return {
    mode: fileMode(node),
    uid: node.uid,
    gid: node.gid,
    size: node.size,
    nlink: node.nlink,
    ino: node.ino,
    rdev: isDevice ? makedev(node.devMajor ?? 0, node.devMinor ?? 0) : 0,
    blksize: BLOCK_SIZE,
    blocks: Math.ceil(node.size / 512),
    // The layer records one time; ctime and atime follow mtime so stat(1)
    // and tar see stable values across mounts.
    atime: time,
    mtime: time,
    ctime: time,
  };
}
