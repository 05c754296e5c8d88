// Mounts left below a benchmark's work dir (FUSE layers of a stopped
// snapshotter daemon, overlay rootfs of a task that did not finish) must go
// before the dir is removed: a recursive delete would walk into them.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** /proc/mounts escapes space, tab, newline and backslash as octal. */
function decodeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export interface MountEntry {
  target: string;
  fsType: string;
}

/** Mounts whose target is strictly below dir, deepest first. */
export function mountsUnder(dir: string): MountEntry[] {
  const prefix = `${dir.replace(/\/+$/, '')}/`;
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter((fields) => fields.length >= 3)
    .map((fields) => ({ target: decodeMountPath(fields[1] as string), fsType: fields[2] as string }))
    .filter((m) => m.target.startsWith(prefix))
    .sort((a, b) => b.target.length - a.target.length || b.target.localeCompare(a.target));
}

export class UnmountError extends Error {
  constructor(readonly dir: string, readonly remaining: string[]) {
    super(`could not unmount ${remaining.length} mount(s) below ${dir}: ${remaining.join(', ')}`);
    this.name = 'UnmountError';
  }
}

/** Unmounts everything below dir (lazily when busy); throws if anything is still mounted afterwards. */
export function unmountUnder(dir: string): void {
  for (const { target } of mountsUnder(dir)) {
    try {
      execFileSync('umount', [target], { stdio: 'pipe' });
    } catch {
      // Busy or a dead FUSE connection: detach it; the check below reports what stays.
      try {
        execFileSync('umount', ['-l', target], { stdio: 'pipe' });
      } catch (err) {
        console.error(`umount -l ${target}: ${(err as { stderr?: Buffer }).stderr?.toString().trim() || String(err)}`);
      }
    }
  }
  const remaining = mountsUnder(dir).map((m) => m.target);
  if (remaining.length > 0) throw new UnmountError(dir, remaining);
}
