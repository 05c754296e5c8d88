/**
 * One daemon per root. Two daemons on one ROOT clean each other's "stale"
 * mounts, hand out colliding snapshot ids and unmount each other's layers,
 * so ROOT/lock is held with flock(2) for the daemon's whole lifetime.
 *
 * Node has no flock(2). util-linux flock(1) is run on the daemon's own
 * descriptor (passed as the child's fd 3): a flock belongs to the open file
 * description, which the child shares, so the lock stays held by the
 * daemon's descriptor after flock(1) exits, and the kernel drops it when the
 * daemon dies, SIGKILL included. No stale lock survives a crash.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

/** flock(1)'s exit code when the lock is held elsewhere (chosen, so it cannot be mistaken for flock's own errors). */
const CONFLICT_EXIT_CODE = 75;

export class RootLockedError extends Error {
  constructor(
    readonly root: string,
    readonly holderPid: number | undefined,
  ) {
    const holder = holderPid === undefined ? 'another process' : `another lazysnap daemon (pid ${holderPid})`;
    super(`root ${root} is in use by ${holder}; only one daemon may serve a root: stop it first or choose another --root`);
    this.name = 'RootLockedError';
  }
}

export class RootLockError extends Error {
  constructor(
    readonly root: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot lock root ${root}: ${message}`, options);
    this.name = 'RootLockError';
  }
}

export interface RootLock {
  /** The lock file, ROOT/lock; it holds the pid of the daemon that owns the root. */
  readonly path: string;
  /**
   * Whether ROOT/lock is still the file this lock holds. False once the root
   * was removed, also when it was made again since: the new lock file is
   * another inode, which another process may lock, so existence alone says
   * nothing.
   */
  isCurrent(): boolean;
  /** Drops the lock (closing the descriptor); the kernel does the same when the process dies. */
  release(): void;
}

/**
 * Creates ROOT (0700) if needed and locks it, or throws RootLockedError
 * naming the pid of the daemon that holds it. Call before anything else
 * under ROOT is read or changed.
 */
export async function lockRoot(root: string): Promise<RootLock> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  const path = join(root, 'lock');
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  try {
    takeExclusiveLock(root, fd);
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  let released = false;
  const held = fstatSync(fd);
  return {
    path,
    isCurrent() {
      const now = statSync(path, { throwIfNoEntry: false });
      return now !== undefined && now.ino === held.ino && now.dev === held.dev;
    },
    release() {
      if (released) return;
      released = true;
      closeSync(fd);
    },
  };
}

function takeExclusiveLock(root: string, fd: number): void {
  const result = spawnSync('flock', ['--exclusive', '--nonblock', '--conflict-exit-code', String(CONFLICT_EXIT_CODE), '3'], {
    stdio: ['ignore', 'ignore', 'pipe', fd],
    encoding: 'utf8',
  });
  if (result.error) throw new RootLockError(root, `running util-linux flock(1) failed: ${result.error.message}`, { cause: result.error });
  if (result.status === CONFLICT_EXIT_CODE) throw new RootLockedError(root, readHolderPid(fd));
  if (result.status !== 0) throw new RootLockError(root, `flock(1) exited with ${result.status ?? result.signal}: ${result.stderr.trim()}`);
}

/** The pid the holder wrote; undefined if it has not written it yet (it locks first, then writes). */
function readHolderPid(fd: number): number | undefined {
  const buffer = Buffer.alloc(32);
  const length = readSync(fd, buffer, 0, buffer.length, 0);
  const text = buffer.subarray(0, length).toString('utf8').trim();
  return /^[1-9][0-9]*$/.test(text) ? Number(text) : undefined;
}
