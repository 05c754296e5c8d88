import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { UnavailableError } from '../errors.js';

/**
 * Makes a unix socket path ready to listen on: the parent directory exists
 * (0711, like containerd's), a stale socket from a dead process is removed,
 * and a socket some live process still answers on is refused.
 */
export async function prepareSocketPath(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o711 });
  let exists = true;
  try {
    await lstat(path);
  } catch {
    exists = false;
  }
  if (!exists) return;
  if (await isListening(path)) {
    throw new UnavailableError(`another process is already serving ${path}; stop it first or choose another --address`);
  }
  await unlink(path);
}

export async function restrictSocket(path: string): Promise<void> {
  await chmod(path, 0o660);
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
