/**
 * The FUSE manager's side of the control socket: answers the daemon's calls
 * with the mounter that lives in this process. Whatever the daemon does, or
 * whether it runs at all, the mounts stay served here.
 */
import { randomUUID } from 'node:crypto';
import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { RemoteStateReport } from '../admin/index.js';
import type { AuthConfig } from '../cri/index.js';
import type { RemoteMounter } from '../snapshotter/remote/remote-mounter.js';
import { FUSE_MANAGER_PROTOCOL, LineChannel, type ManagerHello, type ManagerMethods, type ManagerReply, type ManagerRequest } from './protocol.js';

/** What the manager serves; built by `lazysnap fuse-manager`. */
export interface ManagerBackend {
  mounter: RemoteMounter;
  state(): Promise<RemoteStateReport>;
  /** Prometheus text of the manager's own registry (FUSE, registry, caches). */
  metrics(): Promise<string>;
  /** FUSE mounts served now. */
  mounts(): number;
  /** Settles once the start-up warm-up has ended, however it ended. */
  warmedUp(): Promise<void>;
  /** Present when `[cri_keychain]` is on: credentials of CRI pulls, forwarded by the daemon. */
  keychain?: { remember(image: string, auth: AuthConfig | undefined): unknown; forget(image: string): unknown } | undefined;
}

type Handlers = { [M in keyof ManagerMethods]: (params: ManagerMethods[M]['params']) => Promise<ManagerMethods[M]['result']> };

export class FuseManagerServer {
  readonly hello: ManagerHello;
  private readonly connections = new Set<Socket>();
  private readonly handlers: Handlers;

  private constructor(
    private readonly server: Server,
    readonly socketPath: string,
    backend: ManagerBackend,
    private readonly logger: Logger,
    version: string,
  ) {
    this.hello = { protocol: FUSE_MANAGER_PROTOCOL, instance: randomUUID(), pid: process.pid, version, startedAt: new Date().toISOString() };
    const { mounter } = backend;
    this.handlers = {
      hello: async () => this.hello,
      decide: (request) => mounter.decide(request),
      openImage: async (image) => {
        mounter.openImage(image);
        return null;
      },
      warmedUp: async () => {
        await backend.warmedUp();
        return null;
      },
      acquire: async ({ layer, holder }) => ({ mountpoint: await mounter.acquire(layer, holder) }),
      release: async ({ layer, holder }) => {
        await mounter.release(layer, holder);
        return null;
      },
      retainOnly: async ({ holders }) => {
        await mounter.retainOnly(new Set(holders));
        return null;
      },
      state: () => backend.state(),
      info: async () => ({ ...this.hello, mounts: backend.mounts() }),
      metrics: async () => ({ text: await backend.metrics() }),
      remember: async ({ image, auth }) => {
        backend.keychain?.remember(image, auth as AuthConfig | undefined);
        return null;
      },
      forget: async ({ image }) => {
        backend.keychain?.forget(image);
        return null;
      },
    };
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Listens on socketPath (0600; its directory must be root's alone), replacing a socket file a dead manager left. */
  static async listen(socketPath: string, backend: ManagerBackend, logger: Logger, version: string): Promise<FuseManagerServer> {
    // Only called under the manager's lock: a socket file here is a dead manager's.
    await rm(socketPath, { force: true });
    const server = createServer();
    // Handlers first: a daemon polls for the socket and may connect the moment it
    // exists. A connection accepted before they were attached was never read, so
    // its hello went unanswered until the daemon's 5 s query timeout (seen as a
    // 5.4 s daemon start in the three-way benchmark).
    const manager = new FuseManagerServer(server, socketPath, backend, logger, version);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(socketPath, 0o600);
    return manager;
  }

  private accept(socket: Socket): void {
    this.connections.add(socket);
    socket.on('close', () => this.connections.delete(socket));
    socket.on('error', (err) => this.logger.debug({ err }, 'control connection error'));
    const channel = new LineChannel(
      socket,
      (message) => this.dispatch(channel, message),
      (reason) => this.logger.warn({ reason }, 'control connection sent bad input; closed'),
    );
  }

  private dispatch(channel: LineChannel, message: unknown): void {
    const request = message as Partial<ManagerRequest>;
    if (typeof request !== 'object' || request === null || typeof request.id !== 'number' || typeof request.method !== 'string') {
      this.logger.warn('control message without id or method; ignored');
      return;
    }
    const { id, method } = request;
    const handler = Object.hasOwn(this.handlers, method) ? (this.handlers[method as keyof Handlers] as (params: unknown) => Promise<unknown>) : undefined;
    if (handler === undefined) {
      channel.send({ id, error: { name: 'UnknownMethod', message: `the FUSE manager (protocol ${FUSE_MANAGER_PROTOCOL}) has no method ${JSON.stringify(method)}` } });
      return;
    }
    handler(request.params).then(
      (result): void => channel.send({ id, result } satisfies ManagerReply),
      (err: unknown): void => {
        const error = err instanceof Error ? err : new Error(String(err));
        channel.send({ id, error: { name: error.name, message: error.message } });
      },
    );
  }

  /** Stops listening and drops the connections; the mounts are the caller's to take down. */
  async close(): Promise<void> {
    for (const socket of this.connections) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
