import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Usage } from './types.js';

/**
 * Size and inode count of a directory tree the way containerd computes it:
 * allocated blocks × 512, each inode counted once (hardlinks share one), the
 * root directory included. Runs outside any metadata transaction.
 */
export async function diskUsage(root: string): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  const visit = async (path: string): Promise<void> => {
    const stat = await lstat(path, { bigint: true });
    const inode = `${stat.dev}:${stat.ino}`;
    if (!seen.has(inode)) {
      seen.add(inode);
      size += Number(stat.blocks) * 512;
    }
    if (stat.isDirectory()) {
      for (const name of await readdir(path)) await visit(join(path, name));
    }
  };
  await visit(root);
  return { size, inodes: seen.size };
}
