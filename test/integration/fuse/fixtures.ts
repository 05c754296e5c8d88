// The layer most FUSE tests mount: one of everything a container image holds.
import type { EntrySpec } from './memory-layer.js';
import { randomBytesSeeded } from './helpers.js';

export const BIG_SIZE = 5 * 1024 * 1024 + 12345; // multi-MiB, not page aligned
export const CHUNK_SIZE = 100_000; // odd chunking, so reads straddle chunks

/** Many xattr names (> 256 bytes of names: python's first listxattr buffer). */
export const MANY_XATTRS: Record<string, string> = Object.fromEntries(
  Array.from({ length: 12 }, (_, i) => [`user.attribute-with-a-long-name-${i}`, `v${i}`]),
);
/** A value longer than python's first getxattr buffer (128 bytes). */
export const LONG_XATTR = 'x'.repeat(300);

export function richEntries(): EntrySpec[] {
  return [
    { path: '/etc', type: 'dir', mode: 0o755, mtimeMs: Date.UTC(2023, 5, 1) },
    { path: '/etc/hostname', type: 'reg', data: 'lazysnap\n', mode: 0o644, mtimeMs: 1_700_000_000_123 },
    { path: '/etc/shadow', type: 'reg', data: 'root:*:19000:0:99999:7:::\n', mode: 0o640, uid: 0, gid: 42 },
    { path: '/etc/epoch', type: 'reg', data: 'built reproducibly', mtimeMs: 0 },
    { path: '/empty', type: 'reg', data: '' },
    { path: '/bin/su', type: 'reg', data: '#!/bin/sh\n', mode: 0o4755 },
    { path: '/data/big.bin', type: 'reg', data: randomBytesSeeded(BIG_SIZE, 1) },
    { path: '/data/medium.bin', type: 'reg', data: randomBytesSeeded(300_001, 2) },
    { path: '/data/page.bin', type: 'reg', data: randomBytesSeeded(4096, 3) },
    { path: '/data/hard-a', type: 'reg', data: 'shared by two names\n', mode: 0o600, uid: 7, gid: 8 },
    { path: '/data/hard-b', type: 'hardlink', linkName: '/data/hard-a' },
    { path: '/link-rel', type: 'symlink', linkName: 'etc/hostname' },
    { path: '/link-abs', type: 'symlink', linkName: '/nonexistent/target' },
    { path: '/run/fifo', type: 'fifo', mode: 0o600 },
    { path: '/dev/null', type: 'char', mode: 0o666, devMajor: 1, devMinor: 3 },
    { path: '/dev/sda', type: 'block', mode: 0o660, gid: 6, devMajor: 8, devMinor: 0 },
    // Major > 255 and minor > 255 exercise the split bit fields of makedev.
    { path: '/dev/odd', type: 'char', mode: 0o600, devMajor: 300, devMinor: 70_000 },
    { path: '/home/user', type: 'dir', mode: 0o700, uid: 1000, gid: 1000 },
    { path: '/home/user/notes', type: 'reg', data: 'private\n', mode: 0o600, uid: 1000, gid: 1000 },
    {
      path: '/attrs/file',
      type: 'reg',
      data: 'has xattrs',
      xattrs: { 'user.comment': 'hello', 'user.long': LONG_XATTR, 'trusted.lazysnap': 'secret' },
    },
    { path: '/attrs/many', type: 'reg', data: '', xattrs: MANY_XATTRS },
    // As the layer module emits them: an OCI whiteout and an opaque directory.
    { path: '/etc/gone', type: 'char', mode: 0, devMajor: 0, devMinor: 0 },
    { path: '/opaque', type: 'dir', xattrs: { 'trusted.overlay.opaque': 'y' } },
    { path: '/opaque/inner', type: 'reg', data: 'inner\n' },
  ];
}
