// Reading /proc/self/mountinfo: which mounts exist, where, and of what type.
// The kernel's table is the truth about a mount; our own bookkeeping is not
// (a killed process leaves mounts no one remembers).
import { readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

export interface MountInfoEntry {
  mountId: number;
  parentId: number;
  mountPoint: string;
  fsType: string;
  source: string;
  /** Per-mount options (ro, nosuid, ...). */
  options: string[];
}

/**
 * Mountinfo escapes space, tab, newline and backslash in paths as \ooo
 * octal (see show_mountinfo / mangle() in the kernel).
 */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export function parseMountInfo(text: string): MountInfoEntry[] {
  const entries: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    // "36 35 98:0 /root /mnt opts [optional fields...] - fstype source superopts"
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    if (separator < 0 || fields.length < separator + 3) continue;
    entries.push({
      mountId: Number(fields[0]),
      parentId: Number(fields[1]),
      mountPoint: unescapeMountField(fields[4] ?? ''),
      options: (fields[5] ?? '').split(','),
      fsType: fields[separator + 1] ?? '',
      source: unescapeMountField(fields[separator + 2] ?? ''),
    });
  }
  return entries;
}

export async function readMountInfo(): Promise<MountInfoEntry[]> {
  // Read synchronously on purpose. The kernel writes this table from its own
  // records without asking any filesystem, so it cannot wait on a FUSE
  // request this process has yet to answer; it costs well under a
  // millisecond even on a node with a thousand mounts. Read through the
  // thread pool instead, a file of unknown size is five trips there and
  // back (open, fstat, read, read, close): while an image's layers opened
  // and mounted at once, those trips made one mount's check wait 33 ms.
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
}

export function isFuseType(fsType: string): boolean {
  return fsType === 'fuse' || fsType === 'fuseblk' || fsType.startsWith('fuse.');
}

/**
 * The path as mountinfo spells it: absolute, with symlinks in its parent
 * resolved. The last component is not resolved, because stat on a dead FUSE
 * mount fails (ENOTCONN) and on a hung one never returns.
 *
 * The parent is resolved synchronously: it is a directory the daemon made
 * under its own root, never a mount this process serves, so the call cannot
 * wait on a FUSE request of ours. Through the thread pool, that one lookup
 * waited 18 ms while an image's layers opened and mounted at once.
 */
export async function canonicalMountPath(path: string): Promise<string> {
  const absolute = resolve(path);
  if (absolute === '/') return absolute;
  try {
    return resolve(realpathSync.native(dirname(absolute)), basename(absolute));
  } catch {
    return absolute;
  }
}

/** Whether something is mounted exactly at path. */
export async function isMounted(path: string): Promise<boolean> {
  return hasMountAt(await canonicalMountPath(path));
}

/** Whether something is mounted exactly at a path already in canonicalMountPath's spelling. */
export async function hasMountAt(canonicalPath: string): Promise<boolean> {
  return (await readMountInfo()).some((entry) => entry.mountPoint === canonicalPath);
}
