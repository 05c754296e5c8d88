/**
 * Where running daemons leave word of their admin sockets, so that
 * `lazysnap pull` can hand a pull over without first asking containerd
 * which socket serves `--snapshotter NAME`: that question needs an HTTP/2
 * client, which costs the CLI some 30 ms to load and a round trip to use,
 * on the path of every container start.
 *
 * Each daemon keeps one symlink, `<dir>/<hash of its admin socket>.sock`,
 * naming its admin socket. The link is only a hint: a daemon reached this
 * way asks containerd itself (its HTTP/2 client is loaded and warm) whether
 * it is the snapshotter the pull names, and refuses the pull when it is not
 * (see PullRequestBody.verifySnapshotter). Links of daemons that died stay
 * behind until the next boot empties /run; the CLI skips them at the cost
 * of a failed connect each.
 */
import { lstat, mkdir, readdir, readlink, rename, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/** Root's alone: a link here decides which socket `lazysnap pull` talks to. */
export const DEFAULT_ADMIN_DIRECTORY = '/run/lazysnap/admin';

/** The directory in use: LAZYSNAP_ADMIN_DIRECTORY when set (tests, or several installations on one host), else the default. */
export function adminDirectory(env: NodeJS.ProcessEnv = process.env): string {
  return env.LAZYSNAP_ADMIN_DIRECTORY || DEFAULT_ADMIN_DIRECTORY;
}

const LINK_SUFFIX = '.sock';

/** Imports node:crypto when called: the CLI only lists links, and loading it would cost its start-up some 5 ms. */
async function linkPath(dir: string, adminSocket: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return join(dir, `${createHash('sha256').update(adminSocket).digest('hex').slice(0, 16)}${LINK_SUFFIX}`);
}

/**
 * Leaves the link for `adminSocket` (replacing one a previous daemon on the
 * same socket left). Resolves to what takes it back: the link is removed
 * only while it still names this socket.
 */
export async function advertiseAdminSocket(dir: string, adminSocket: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = await linkPath(dir, adminSocket);
  const temp = `${path}.tmp-${process.pid}`;
  await unlink(temp).catch(() => {});
  await symlink(adminSocket, temp);
  await rename(temp, path);
  return async () => {
    const target = await readlink(path).catch(() => undefined);
    if (target === adminSocket) await unlink(path).catch(() => {});
  };
}

/**
 * The admin sockets daemons advertised, the most recently advertised first
 * (on a node that runs one daemon, the first is the one). None when the
 * directory is missing or not ours to read.
 */
export async function advertisedAdminSockets(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.endsWith(LINK_SUFFIX));
  } catch {
    return [];
  }
  const links = await Promise.all(names.map(async (name) => {
    const path = join(dir, name);
    const info = await lstat(path).catch(() => undefined);
    return info?.isSymbolicLink() ? { path, mtimeMs: info.mtimeMs } : undefined;
  }));
  return links
    .filter((link): link is { path: string; mtimeMs: number } => link !== undefined)
    .sort((a, b) => b.mtimeMs - a.mtimeMs)
    .map((link) => link.path);
}
