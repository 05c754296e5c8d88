import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { UnavailableError } from '../errors.js';

/**
 * sun_path holds 108 bytes on Linux, the last one the terminating NUL. A
 * longer path is not refused by bind(2) in Node: it is silently truncated,
 * and a socket with a different name appears.
 */
export const MAX_SOCKET_PATH_BYTES = 107;

/** An --address that cannot be served on: too long, or something that is not a socket is there. */
export class SocketAddressError extends Error {
  constructor(
    readonly address: string,
    message: string,
  ) {
    super(message);
    this.name = 'SocketAddressError';
  }
}

type SocketPathState = 'absent' | 'stale';

/**
 * Checks that a unix socket can be served at path without touching
 * anything: the path fits in sun_path, nothing but a socket is there, and
 * no live process answers on it. Returns whether a stale socket is in the way.
 */
export async function checkSocketAddress(path: string): Promise<SocketPathState> {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new SocketAddressError(path, `socket address ${path} is ${bytes} bytes long; a unix socket path can be at most ${MAX_SOCKET_PATH_BYTES} bytes: choose a shorter --address`);
  }
  let entry: Stats;
  try {
    entry = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw err;
  }
  if (!entry.isSocket()) {
    throw new SocketAddressError(path, `socket address ${path} exists and is ${describe(entry)}, not a socket; lazysnap will not replace it: remove it or choose another --address`);
  }
  if (await isListening(path)) {
    throw new UnavailableError(`another process is already serving ${path}; stop it first or choose another --address`);
  }
  return 'stale';
}

/**
 * Makes a unix socket path ready to listen on: the checks above, then the
 * parent directory exists (0711, like containerd's) and a stale socket from
 * a dead process is removed.
 */
export async function prepareSocketPath(path: string): Promise<void> {
  const state = await checkSocketAddress(path);
  await mkdir(dirname(path), { recursive: true, mode: 0o711 });
  if (state === 'stale') await unlink(path);
}

export async function restrictSocket(path: string): Promise<void> {
  await chmod(path, 0o660);
}

function describe(entry: Stats): string {
  if (entry.isFile()) return 'a regular file';
  if (entry.isDirectory()) return 'a directory';
  if (entry.isSymbolicLink()) return 'a symbolic link';
  if (entry.isFIFO()) return 'a FIFO';
  if (entry.isCharacterDevice() || entry.isBlockDevice()) return 'a device';
  return 'something else';
}

function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (listening: boolean) => {
      socket.destroy();
      resolve(listening);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(2000, () => done(false));
  });
}
