// Mounts left behind by a lazysnap that died without unmounting (SIGKILL,
// OOM, crash). The kernel keeps such a FUSE mount with no one serving it:
// every access fails with ENOTCONN and the directory cannot be reused or
// removed until it is unmounted.
import { detachMount } from './detach.js';
import type { FuseLogger } from './logger.js';
import { canonicalMountPath, isFuseType, readMountInfo } from './mountinfo.js';

/**
 * Lazily unmounts every FUSE mount at or below dir and returns their paths,
 * deepest first. Meant for start-up, before this process mounts anything
 * under dir: it cannot tell a dead mount from a live one without touching
 * it (a stat on a hung mount would never return), so it removes them all.
 */
export async function cleanupStaleMounts(dir: string, logger: FuseLogger): Promise<string[]> {
  const root = await canonicalMountPath(dir);
  const prefix = root === '/' ? '/' : `${root}/`;
  const found = new Set<string>();
  for (const entry of await readMountInfo()) {
    if (!isFuseType(entry.fsType)) continue;
    if (entry.mountPoint === root || entry.mountPoint.startsWith(prefix)) found.add(entry.mountPoint);
  }
  // Children before parents, or the parent's detach would hide them.
  const paths = [...found].sort((a, b) => depth(b) - depth(a) || a.localeCompare(b));
  const removed: string[] = [];
  for (const path of paths) {
    try {
      if (!(await detachMount(path, logger))) continue; // gone meanwhile
      removed.push(path);
      logger.warn({ mountpoint: path }, 'removed stale FUSE mount');
    } catch (err) {
      logger.error({ mountpoint: path, err }, 'could not remove stale FUSE mount');
    }
  }
  return removed;
}

function depth(path: string): number {
  return path.split('/').length;
}
