/**
 * The daemon's admin endpoint: JSON over HTTP on a unix socket next to the
 * gRPC one (`<address>.admin`), for `lazysnap status` and for the pulls
 * `lazysnap pull --remote-snapshot` hands over (see pull-model.ts).
 *
 * Why HTTP on its own socket and not another gRPC service: the status
 * command then needs nothing but node:http (no proto loading, no grpc-js, so
 * it starts fast), an operator can ask with `curl --unix-socket`, and the
 * permissions of the socket file decide who may ask, independently of the
 * Snapshots socket's 0660. It is root's alone (0600): the status names
 * images, registries and mount paths.
 */
import { chmod } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { parsePullRequest, PullRequestError, type PullEvent, type PullRequestBody } from './pull-model.js';

/** The admin socket of the daemon serving the Snapshots API on `address`. */
export function adminSocketPath(address: string): string {
  return `${address}.admin`;
}

export interface AdminRoutes {
  /** GET /status: the daemon's status as JSON. */
  status(): Promise<unknown>;
  /**
   * POST /pull: runs a pull for `lazysnap pull` (see pull-model.ts), sending
   * its events as it goes; resolves once it sent `done`. A rejection is sent
   * on as an `error` event. Absent: 404, and the CLI pulls by itself.
   */
  pull?(request: PullRequestBody, send: (event: PullEvent) => void): Promise<void>;
  /**
   * For a pull with verifySnapshotter: why this daemon is not the snapshotter
   * the pull names (answered 409, nothing started), or undefined when it is.
   * Absent: every such pull is refused.
   */
  refusePull?(request: PullRequestBody): Promise<string | undefined>;
}

/** A pull request is a few hundred bytes; anything near this is not one. */
const MAX_PULL_REQUEST_BYTES = 64 * 1024;

export class AdminServer {
  private constructor(
    readonly path: string,
    private readonly server: Server,
  ) {}

  /**
   * Listens on `path` (which must be free: the caller checked and prepared it
   * like the gRPC socket). The socket is created under umask 0177, so it is
   * never reachable by others, not even between bind(2) and the chmod.
   */
  static async listen(path: string, routes: AdminRoutes): Promise<AdminServer> {
    const server = createServer((req, res) => {
      if (req.url === '/pull' && routes.pull) {
        if (req.method !== 'POST') return answer(res, 405, { error: `${req.method} not allowed; POST /pull` });
        return servePull(req, res, routes.pull, routes.refusePull);
      }
      if (req.method !== 'GET') return answer(res, 405, { error: `${req.method} not allowed on ${req.url}` });
      if (req.url !== '/status') return answer(res, 404, { error: `no ${req.url}; try GET /status` });
      routes.status().then(
        (status) => answer(res, 200, status),
        (err: unknown) => answer(res, 500, { error: err instanceof Error ? err.message : String(err) }),
      );
    });
    const previousUmask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
        // bind(2) has happened by the time listen() returns: the file's mode is set by now.
        process.umask(previousUmask);
      });
    } finally {
      process.umask(previousUmask);
    }
    await chmod(path, 0o600);
    return new AdminServer(path, server);
  }

  /** Stops listening and removes the socket file; open status requests are cut. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

function servePull(req: IncomingMessage, res: ServerResponse, pull: NonNullable<AdminRoutes['pull']>, refusePull: AdminRoutes['refusePull']): void {
  const parts: Buffer[] = [];
  let size = 0;
  req.on('data', (part: Buffer) => {
    size += part.length;
    if (size > MAX_PULL_REQUEST_BYTES) {
      answer(res, 413, { error: `a pull request is at most ${MAX_PULL_REQUEST_BYTES} bytes` });
      req.destroy();
      return;
    }
    parts.push(part);
  });
  req.on('end', () => {
    let request: PullRequestBody;
    try {
      request = parsePullRequest(JSON.parse(Buffer.concat(parts).toString('utf8')));
    } catch (err) {
      const message = err instanceof PullRequestError ? err.message : `bad pull request: ${err instanceof Error ? err.message : String(err)}`;
      return answer(res, 400, { error: message });
    }
    if (request.verifySnapshotter) {
      void (refusePull?.(request) ?? Promise.resolve('this daemon cannot check which snapshotter it is')).then(
        (refusal) => (refusal === undefined ? startPull(res, pull, request) : answer(res, 409, { error: refusal })),
        (err: unknown) => answer(res, 409, { error: `checking which snapshotter this daemon is failed: ${err instanceof Error ? err.message : String(err)}` }),
      );
      return;
    }
    startPull(res, pull, request);
  });
}

function startPull(res: ServerResponse, pull: NonNullable<AdminRoutes['pull']>, request: PullRequestBody): void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  // A CLI that went away does not stop the pull (containerd's lease keeps what it made); its events are dropped.
  const send = (event: PullEvent): void => {
    if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify(event)}\n`);
  };
  pull(request, send).then(
    () => res.end(),
    (err: unknown) => {
      send({ error: { name: err instanceof Error ? err.name : 'Error', message: err instanceof Error ? err.message : String(err) } });
      res.end();
    },
  );
}

function answer(res: ServerResponse, code: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}
