/** Asks a running daemon for its status over the admin socket (what `lazysnap status` does). */
import { request } from 'node:http';
import type { DaemonStatus } from './status-model.js';

/** The daemon could not be asked: not running, not ours to ask, or it answered with an error. */
export class AdminRequestError extends Error {
  constructor(
    readonly socket: string,
    message: string,
    options?: { cause: unknown },
  ) {
    super(message, options);
    this.name = 'AdminRequestError';
  }
}

export function fetchStatus(socket: string, timeoutMs = 10_000): Promise<DaemonStatus> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path: '/status', method: 'GET', timeout: timeoutMs }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (part: Buffer) => parts.push(part));
      res.on('error', (err) => reject(new AdminRequestError(socket, `reading the status from ${socket} failed: ${err.message}`, { cause: err })));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        if (res.statusCode !== 200) {
          reject(new AdminRequestError(socket, `the daemon at ${socket} answered ${res.statusCode}: ${text.trim()}`));
          return;
        }
        try {
          resolve(JSON.parse(text) as DaemonStatus);
        } catch (err) {
          reject(new AdminRequestError(socket, `the daemon at ${socket} answered something that is not JSON`, { cause: err }));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(new AdminRequestError(socket, explain(socket, err), { cause: err })));
    req.end();
  });
}

function explain(socket: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return `no lazysnap daemon answers on ${socket} (is \`lazysnap serve\` running with this --address?)`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied on ${socket}: the admin socket is root's alone; run lazysnap status as root`;
    default:
      return `asking ${socket} for the status failed: ${err.message}`;
  }
}
