// Taking a FUSE mount off its mountpoint, live or dead.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { FuseLogger } from './logger.js';
import { canonicalMountPath, isMounted } from './mountinfo.js';

const run = promisify(execFile);

// Lazy (-z / -l) detaches on purpose. A non-lazy unmount fails with EBUSY
// while an overlay mount still uses the layer as a lowerdir or a process
// holds a file open; lazily detached, the mount leaves the namespace at once
// and the kernel keeps the connection until its last user is gone, so those
// users see their reads finish instead of the mount vanishing under them.
// fusermount first (it is what fuse-native and libfuse use and it checks that
// the target is a FUSE mount); umount(8) covers machines without it.
const COMMANDS: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['fusermount', ['-u', '-z']],
  ['fusermount3', ['-u', '-z']],
  ['umount', ['-l']],
];

/**
 * Lazily unmounts whatever is mounted at path. Resolves true when it took
 * a mount off, false when nothing was mounted there; rejects when the mount
 * is still there after every method.
 */
export async function detachMount(path: string, logger: FuseLogger): Promise<boolean> {
  const target = await canonicalMountPath(path);
  if (!(await isMounted(target))) return false;
  const failures: string[] = [];
  for (const [command, args] of COMMANDS) {
    try {
      await run(command, [...args, target], { timeout: 10_000 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      failures.push(`${command}: ${(e.stderr ?? '').trim() || e.message}`);
    }
    // Check the kernel's table rather than the exit status: fusermount fails
    // on a mount someone else already removed, and succeeding is not enough
    // when several mounts are stacked on one path.
    if (!(await isMounted(target))) {
      if (failures.length > 0) logger.debug({ mountpoint: target, failures }, 'unmounted after earlier attempts failed');
      return true;
    }
  }
  throw new Error(`could not unmount ${target}: ${failures.join('; ') || 'still mounted'}`);
}
