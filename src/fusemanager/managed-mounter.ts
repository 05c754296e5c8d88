/**
 * The daemon's RemoteMounter when a FUSE manager serves the mounts: every
 * call goes over the manager's socket. The daemon may stop, crash or be
 * replaced by another build; the manager and its mounts stay, and the next
 * daemon takes them over (acquire is idempotent per holder). When the
 * manager itself is lost, this reconnects (starting a new one) and makes
 * every mount it knows of again, so new containers work; running ones on the
 * old mounts do not recover (the kernel ends a FUSE connection with its
 * server).
 */
import type { Logger } from 'pino';
import type { RemoteStateReport } from '../admin/index.js';
import type { FuseManagerStatus } from '../admin/index.js';
import type { RemoteLayerRef } from '../snapshotter/metadata-store.js';
import type { ImageToOpen, NotRemote, RemoteMounter } from '../snapshotter/remote/remote-mounter.js';
import type { RemoteRequest } from '../snapshotter/remote/remote-request.js';
import { ManagerConnection } from './manager-connection.js';
import { FUSE_MANAGER_PROTOCOL, FuseManagerUnavailableError, type ForwardedAuth, type ManagerHello, type ManagerMethod, type ManagerMethods } from './protocol.js';

/** A manager this daemon started: it may exit before it ever answers (a bad config, a lock held by another). */
export interface StartedManager {
  exited: Promise<number | null>;
  logPath: string;
}

export interface ManagedMounterOptions {
  socketPath: string;
  /** Starts a manager when none answers on socketPath. */
  start(): Promise<StartedManager>;
  logger: Logger;
  /** How long to wait for a manager to answer (a start included) before calls fail. Default 30 s. */
  connectTimeoutMs?: number;
  /**
   * After a lost connection, how long the socket must stay absent before this
   * starts a manager itself: a service manager restarting the manager's own
   * unit gets there first, and two managers would fight over the lock.
   * Default 3 s.
   */
  restartGraceMs?: number;
}

/** Status and metrics must not hang on a manager that does not answer. */
const QUERY_TIMEOUT_MS = 5_000;
const RECONNECT_INTERVAL_MS = 1_000;

export class ManagedMounter implements RemoteMounter {
  private connection: ManagerConnection | undefined;
  private connecting: Promise<ManagerConnection> | undefined;
  private hello: ManagerHello | undefined;
  private lastError: string | undefined;
  private restartCount = 0;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Every reference this daemon holds, so a new manager can be given the same mounts. */
  private readonly held = new Map<string, RemoteLayerRef>();

  private constructor(private readonly options: ManagedMounterOptions) {}

  /** Connects to the manager, starting one if none answers; throws when none can be reached. */
  static async connect(options: ManagedMounterOptions): Promise<ManagedMounter> {
    const mounter = new ManagedMounter(options);
    await mounter.connected();
    return mounter;
  }

  /** Times a new manager instance answered after one was lost. */
  get restarts(): number {
    return this.restartCount;
  }

  get isConnected(): boolean {
    return this.connection?.isOpen === true;
  }

  decide(request: RemoteRequest): Promise<RemoteLayerRef | NotRemote> {
    return this.call('decide', request);
  }

  openImage(image: ImageToOpen): void {
    // Only a head start: the Prepares open the layers anyway (and an older manager does not know the call).
    this.call('openImage', image).catch((err: unknown) => this.options.logger.debug({ err, ref: image.ref }, 'the FUSE manager did not start opening the image ahead'));
  }

  /**
   * Waits up to timeoutMs for the manager's start-up warm-up to end. Never
   * fails: a manager that does not know the call (an older one) or does not
   * answer in time only means the first pull may share the CPU with it.
   */
  async warmedUp(timeoutMs: number): Promise<void> {
    try {
      await this.call('warmedUp', null, timeoutMs);
    } catch (err) {
      this.options.logger.debug({ err: { message: (err as Error).message } }, 'not waiting for the FUSE manager\'s warm-up');
    }
  }

  async acquire(layer: RemoteLayerRef, holder: string): Promise<string> {
    const { mountpoint } = await this.call('acquire', { layer, holder });
    this.held.set(holder, layer);
    return mountpoint;
  }

  async release(layer: RemoteLayerRef, holder: string): Promise<void> {
    this.held.delete(holder);
    await this.call('release', { layer, holder });
  }

  async retainOnly(holders: ReadonlySet<string>): Promise<void> {
    for (const holder of [...this.held.keys()]) if (!holders.has(holder)) this.held.delete(holder);
    await this.call('retainOnly', { holders: [...holders] });
  }

  /** The manager removes what a dead manager left when it starts; the daemon must not touch live mounts. */
  async cleanupStale(): Promise<string[]> {
    return [];
  }

  /** Fails at once while the manager is away: a status call must not wait for a reconnection. */
  state(): Promise<RemoteStateReport> {
    if (!this.isConnected) return Promise.reject(new FuseManagerUnavailableError(this.options.socketPath, `not connected${this.lastError !== undefined ? ` (${this.lastError})` : ''}`));
    return this.call('state', null, QUERY_TIMEOUT_MS);
  }

  /** The manager's metrics as Prometheus text; empty when it does not answer (the connected gauge says so). */
  async metricsText(): Promise<string> {
    try {
      return (await this.call('metrics', null, QUERY_TIMEOUT_MS)).text;
    } catch (err) {
      this.options.logger.debug({ err }, 'FUSE manager metrics not available');
      return '';
    }
  }

  async status(): Promise<FuseManagerStatus> {
    const base = { socket: this.options.socketPath, restarts: this.restartCount };
    if (!this.isConnected) return { ...base, connected: false, error: this.lastError ?? 'not connected' };
    try {
      const info = await this.call('info', null, QUERY_TIMEOUT_MS);
      return { ...base, connected: true, pid: info.pid, version: info.version, startedAt: info.startedAt, mounts: info.mounts };
    } catch (err) {
      return { ...base, connected: false, error: (err as Error).message };
    }
  }

  /** Passes a CRI pull's credentials on to the manager, which talks to the registries. */
  forwardCredentials(auth: ForwardedAuth): void {
    this.call('remember', auth).catch((err: unknown) => this.options.logger.warn({ err: { message: (err as Error).message }, image: auth.image }, 'could not pass CRI credentials to the FUSE manager; its registry requests for the image go without them'));
  }

  forgetCredentials(image: string): void {
    this.call('forget', { image }).catch((err: unknown) => this.options.logger.warn({ err: { message: (err as Error).message }, image }, 'could not tell the FUSE manager to forget CRI credentials'));
  }

  /** Disconnects; the manager and its mounts stay for the next daemon. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.connection?.close();
    this.connection = undefined;
  }

  private async call<M extends ManagerMethod>(method: M, params: ManagerMethods[M]['params'], timeoutMs?: number): Promise<ManagerMethods[M]['result']> {
    const connection = await this.connected();
    return connection.call(method, params, timeoutMs);
  }

  private connected(): Promise<ManagerConnection> {
    if (this.connection?.isOpen) return Promise.resolve(this.connection);
    // The first connection starts a manager at once; after a loss, a service manager gets its chance first.
    const graceMs = this.hello === undefined ? 0 : (this.options.restartGraceMs ?? 3_000);
    this.connecting ??= this.establish(graceMs).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async establish(graceMs: number): Promise<ManagerConnection> {
    const { socketPath, logger } = this.options;
    const timeoutMs = this.options.connectTimeoutMs ?? 30_000;
    const began = Date.now();
    const deadline = began + graceMs + timeoutMs;
    let started: StartedManager | undefined;
    let exitCode: number | null | undefined;
    for (;;) {
      if (this.closed) throw new FuseManagerUnavailableError(socketPath, 'the daemon is shutting down');
      let connection: ManagerConnection;
      try {
        connection = await ManagerConnection.open(socketPath, logger, (closed) => this.lost(closed));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const absent = code === 'ENOENT' || code === 'ECONNREFUSED';
        if (absent && started === undefined && Date.now() - began >= graceMs) {
          started = await this.options.start();
          void started.exited.then((exit) => {
            exitCode = exit;
          });
          logger.info({ socket: socketPath, log: started.logPath }, 'no FUSE manager answered; started one');
        }
        this.lastError = (err as Error).message;
        if (Date.now() > deadline) {
          const exited = exitCode !== undefined ? `; the manager started here exited with code ${exitCode}` : '';
          throw new FuseManagerUnavailableError(socketPath, `no answer within ${graceMs + timeoutMs} ms (${this.lastError})${exited}${started ? `; see ${started.logPath}` : ''}`, { cause: err });
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      let hello: ManagerHello;
      try {
        hello = await connection.call('hello', { protocol: FUSE_MANAGER_PROTOCOL }, QUERY_TIMEOUT_MS);
      } catch (err) {
        // A manager that is still starting or already going (it lost its lock to another): ask again until the deadline.
        connection.close();
        this.lastError = (err as Error).message;
        logger.warn({ err: { message: this.lastError }, socket: socketPath }, 'the FUSE manager did not answer the handshake; trying again');
        if (Date.now() > deadline) throw new FuseManagerUnavailableError(socketPath, `no handshake within ${graceMs + timeoutMs} ms (${this.lastError})`, { cause: err });
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      if (hello.protocol !== FUSE_MANAGER_PROTOCOL) {
        connection.close();
        throw new FuseManagerUnavailableError(socketPath, `the running manager (pid ${hello.pid}, version ${hello.version}) speaks control protocol ${hello.protocol}, this daemon ${FUSE_MANAGER_PROTOCOL}; stop it (its mounts go with it) or run a daemon of its version`);
      }
      this.connection = connection;
      this.lastError = undefined;
      await this.adopt(connection, hello);
      return connection;
    }
  }

  /** A different instance than before means the old manager died with its mounts: make them all again. */
  private async adopt(connection: ManagerConnection, hello: ManagerHello): Promise<void> {
    const previous = this.hello;
    this.hello = hello;
    const { logger } = this.options;
    if (previous === undefined) {
      logger.info({ pid: hello.pid, version: hello.version, since: hello.startedAt }, 'connected to the FUSE manager');
      return;
    }
    if (previous.instance === hello.instance) {
      logger.info({ pid: hello.pid }, 'connected to the FUSE manager again');
      return;
    }
    this.restartCount++;
    logger.warn({ pid: hello.pid, previousPid: previous.pid, layers: this.held.size }, 'the FUSE manager was replaced (it died or was restarted); mounting every layer again. Containers that were running on the old mounts cannot read them any more');
    await Promise.all(
      [...this.held].map(([holder, layer]) =>
        connection.call('acquire', { layer, holder }).catch((err: unknown) => logger.error({ err: { message: (err as Error).message }, layer: layer.digest, holder }, 'mounting a layer again on the new FUSE manager failed')),
      ),
    );
  }

  private lost(connection: ManagerConnection): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    if (this.closed) return;
    this.options.logger.warn({ socket: this.options.socketPath }, 'lost the connection to the FUSE manager; reconnecting');
    this.reconnect();
  }

  private reconnect(): void {
    if (this.closed) return;
    this.connected().catch((err: unknown) => {
      this.options.logger.error({ err: { message: (err as Error).message } }, 'FUSE manager still unreachable; trying again');
      this.reconnectTimer = setTimeout(() => this.reconnect(), RECONNECT_INTERVAL_MS);
    });
  }
}
