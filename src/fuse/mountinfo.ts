// Reading /proc/self/mountinfo: which mounts exist, where, and of what type.
// The kernel's table is the truth about a mount; our own bookkeeping is not
// (a killed process leaves mounts no one remembers).
import { readFile, realpath } from 'node:fs/promises';
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
  // Async read on purpose: a synchronous call would stall the event loop,
  // and with it every FUSE request this process serves.
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

export function isFuseType(fsType: string): boolean {
  return fsType === 'fuse' || fsType === 'fuseblk' || fsType.startsWith('fuse.');
}

/**
 * The path as mountinfo spells it: absolute, with symlinks in its parent
 * resolved. The last component is not resolved, because stat on a dead FUSE
 * mount fails (ENOTCONN) and on a hung one never returns.
 */
export async function canonicalMountPath(path: string): Promise<string> {
  const absolute = resolve(path);
  if (absolute === '/') return absolute;
  try {
    return resolve(await realpath(dirname(absolute)), basename(absolute));
  } catch {
    return absolute;
  }
}

/** Whether something is mounted exactly at path. */
export async function isMounted(path: string): Promise<boolean> {
  const target = await canonicalMountPath(path);
  return (await readMountInfo()).some((entry) => entry.mountPoint === target);
}
