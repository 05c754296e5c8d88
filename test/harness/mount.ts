// Performs the mounts a snapshotter returns, as containerd would, with
// mount(8). Long overlay lowerdir lists are shortened the way containerd's
// mount_linux.go does: run mount from the lowerdirs' common parent with
// relative paths, so 128-layer chains fit in one page of options.
import { execFileSync } from 'node:child_process';
import { dirname, relative } from 'node:path';
import type { MountMessage } from '../../src/containerd/snapshots-client.js';

export function mountAll(mounts: MountMessage[], target: string): void {
  for (const m of mounts) mountOne(m, target);
}

function mountOne(m: MountMessage, target: string): void {
  if (m.type === 'bind') {
    execFileSync('mount', ['--bind', m.source, target]);
    if (m.options.includes('ro')) execFileSync('mount', ['-o', 'remount,bind,ro', target]);
    return;
  }
  const options = m.options.join(',');
  if (options.length < 4000) {
    execFileSync('mount', ['-t', m.type, m.source, target, '-o', options]);
    return;
  }
  const lowerOption = m.options.find((o) => o.startsWith('lowerdir='));
  if (!lowerOption) throw new Error(`mount options too long and no lowerdir: ${options.length} bytes`);
  const lowers = lowerOption.slice('lowerdir='.length).split(':');
  // snapshots/<id>/fs → common parent is snapshots/
  const common = dirname(dirname(lowers[0] as string));
  const compact = m.options.map((o) => (o === lowerOption ? `lowerdir=${lowers.map((l) => relative(common, l)).join(':')}` : o));
  execFileSync('mount', ['-t', m.type, m.source, target, '-o', compact.join(',')], { cwd: common });
}

export function unmount(target: string): void {
  try {
    execFileSync('umount', [target], { stdio: 'ignore' });
  } catch {
    execFileSync('umount', ['-l', target], { stdio: 'ignore' });
  }
}
