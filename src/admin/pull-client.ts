/**
 * The CLI's side of a pull handed to the daemon (see pull-model.ts): POST
 * /pull on the admin socket, then one event per line until `done` or
 * `error`. node:http only, so `lazysnap pull` needs nothing heavier to run.
 */
import { request } from 'node:http';
import type { PullEvent, PullRequestBody, PullSummary } from './pull-model.js';

/**
 * The daemon cannot take the pull (none answers on the socket, it is not
 * root's to ask, or it is a version without POST /pull): the CLI pulls by
 * itself. Nothing was started.
 */
export class DaemonCannotPullError extends Error {
  constructor(
    readonly socket: string,
    reason: string,
    options?: { cause: unknown },
  ) {
    super(`the lazysnap daemon at ${socket} cannot take the pull: ${reason}`, options);
    this.name = 'DaemonCannotPullError';
  }
}

/** The pull ran in the daemon and failed there; the message is the one the CLI would have printed. */
export class DaemonPullError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** How long the daemon may take to accept the request; the pull itself has no deadline (large layers may be downloaded). */
const CONNECT_TIMEOUT_MS = 5_000;

export function requestPull(socket: string, body: PullRequestBody, onEvent: (event: PullEvent) => void): Promise<PullSummary> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      reject(err);
    };
    const req = request({ socketPath: socket, path: '/pull', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      req.setTimeout(0);
      if (res.statusCode === 404 || res.statusCode === 405) {
        res.resume();
        return fail(new DaemonCannotPullError(socket, `it answered ${res.statusCode} (a version without pulls)`));
      }
      if (res.statusCode !== 200) {
        const parts: Buffer[] = [];
        res.on('data', (part: Buffer) => parts.push(part));
        res.on('end', () => {
          const reason = errorText(Buffer.concat(parts).toString('utf8'));
          // 409: not the snapshotter the pull names (see PullRequestBody.verifySnapshotter); another daemon may be.
          if (res.statusCode === 409) return fail(new DaemonCannotPullError(socket, reason));
          fail(new DaemonPullError('DaemonPullError', `the lazysnap daemon at ${socket} refused the pull (${res.statusCode}): ${reason}`));
        });
        return;
      }
      let pending = '';
      const handleLine = (line: string): void => {
        if (line.trim() === '') return;
        let event: PullEvent;
        try {
          event = JSON.parse(line) as PullEvent;
        } catch {
          return fail(new DaemonPullError('DaemonPullError', `the lazysnap daemon at ${socket} sent a line that is not JSON: ${line.slice(0, 200)}`));
        }
        if ('done' in event) {
          settled = true;
          resolve(event.done);
        } else if ('error' in event) {
          fail(new DaemonPullError(event.error.name, event.error.message));
        } else {
          onEvent(event);
        }
      };
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        pending += text;
        let newline: number;
        while ((newline = pending.indexOf('\n')) >= 0) {
          handleLine(pending.slice(0, newline));
          pending = pending.slice(newline + 1);
        }
      });
      res.on('end', () => {
        handleLine(pending);
        fail(new DaemonPullError('DaemonPullError', `the lazysnap daemon at ${socket} ended the answer before the pull finished (did it stop?)`));
      });
      res.on('error', (err) => fail(new DaemonPullError('DaemonPullError', `the connection to the lazysnap daemon at ${socket} broke during the pull: ${err.message}`)));
    });
    req.setTimeout(CONNECT_TIMEOUT_MS, () => req.destroy(Object.assign(new Error(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      switch (err.code) {
        case 'ENOENT':
        case 'ECONNREFUSED':
          return fail(new DaemonCannotPullError(socket, 'no daemon answers there', { cause: err }));
        case 'EACCES':
        case 'EPERM':
          return fail(new DaemonCannotPullError(socket, "permission denied (the admin socket is root's alone)", { cause: err }));
        case 'ETIMEDOUT':
          return fail(new DaemonCannotPullError(socket, err.message, { cause: err }));
        default:
          return fail(new DaemonPullError('DaemonPullError', `asking the lazysnap daemon at ${socket} to pull failed: ${err.message}`));
      }
    });
    req.end(JSON.stringify(body));
  });
}

function errorText(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // not JSON: shown as it came
  }
  return text.trim().slice(0, 500);
}
