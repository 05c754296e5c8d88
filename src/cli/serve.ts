/**
 * `lazysnap serve`: the composition root of the daemon. Everything is built
 * here and passed in; nothing below reaches for globals.
 */
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { loadConfigWithSource, parseListenAddress, type LazysnapConfig } from '../config/index.js';
import { AdminServer, RecentErrors, StatusCollector, adminDirectory, adminSocketPath, advertiseAdminSocket, type FuseManagerStatus, type StatusSources } from '../admin/index.js';
import { CriKeychain, ImageServiceProxy, imageServiceDefinition, type CredentialsKeeper } from '../cri/index.js';
import { ManagedMounter, forwardingKeychain, managerSocketPath, registerManagerMetrics, startManagerProcess } from '../fusemanager/index.js';
import type { RemoteMounter } from '../snapshotter/remote/remote-mounter.js';
import { DaemonPulls } from './daemon-pull.js';
import { createRemoteParts, makePrivateCacheDirectories, tocCacheDirectory } from './remote-parts.js';
import {
  MetadataStore,
  Snapshotter,
  SnapshotterMetrics,
  SnapshotsServer,
  checkSocketAddress,
  createSnapshotsService,
  detectOverlayFeatures,
  lockRoot,
  prepareSocketPath,
} from '../snapshotter/index.js';
import { levelName, resolveLogFormat } from './log-format.js';
import { LogSink } from './log-sink.js';
import { notifierFromEnvironment } from './systemd-notify.js';
import { packageVersion } from './version.js';
import { NotRootError } from './not-root.js';

export interface ServeFlags {
  address?: string;
  root?: string;
  config?: string;
  logLevel?: string;
  logFormat?: string;
  metricsAddress?: string;
  /** --fuse-manager / --no-fuse-manager */
  fuseManager?: boolean;
}

/** How long in-flight calls may run after SIGTERM before they are cut off. */
const CALL_GRACE_MS = 10_000;
/** The whole shutdown (calls, FUSE unmounts, metadata close) ends by then, whatever hangs. */
const SHUTDOWN_DEADLINE_MS = CALL_GRACE_MS + 5_000;
/** How long detaching the mounts left at the deadline may take before the process exits anyway. */
const DETACH_AT_DEADLINE_MS = 5_000;
/** How long the last log lines may take to reach a slow reader before the process exits anyway. */
const LOG_DRAIN_MS = 1_000;
/** Longest the daemon waits for a FUSE manager's start-up warm-up (usually 0.3-0.5 s) before it serves anyway. */
const MANAGER_WARM_UP_WAIT_MS = 3_000;

export async function serve(flags: ServeFlags): Promise<void> {
  const euid = process.geteuid?.() ?? 0;
  if (euid !== 0) throw new NotRootError('serve', euid);
  const { config, file } = await loadConfigWithSource(flags.config, {
    address: flags.address,
    root: flags.root,
    logLevel: flags.logLevel as LazysnapConfig['logLevel'] | undefined,
    logFormat: flags.logFormat as LazysnapConfig['logFormat'] | undefined,
    metricsAddress: flags.metricsAddress,
    ...(flags.fuseManager !== undefined ? { fuseManager: { enable: flags.fuseManager } } : {}),
  });
  const logSink = new LogSink(2, undefined, resolveLogFormat(config.logFormat, process.stderr.isTTY === true));
  const logger = pino({ level: config.logLevel, base: { service: 'lazysnap' }, formatters: { level: (label) => ({ level: levelName(label) }) } }, logSink);
  const version = packageVersion();
  const configSource = file ?? 'defaults';
  const daemon = await startDaemon(config, logger, { version, config: configSource, configFile: file, cliPath: process.argv[1] });
  logger.info({ version, config: configSource, settings: config, address: config.address, admin: daemon.adminSocket, root: config.root }, 'lazysnap snapshotter serving');
  // After the socket listens, never before: containerd.service is ordered after this readiness.
  const notifier = notifierFromEnvironment(process.env, process.pid);
  void notifier?.ready(`serving on ${config.address}`).catch((err: unknown) => logger.error({ err }, 'could not tell systemd the daemon is ready'));
  const exit = async (code: number) => {
    await logSink.drain(LOG_DRAIN_MS);
    process.exit(code);
  };
  const stop = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    setTimeout(() => {
      logger.error({ deadlineMs: SHUTDOWN_DEADLINE_MS, step: daemon.currentStep() }, 'shutdown did not finish in time; detaching the FUSE mounts left and exiting anyway');
      const detached = daemon.detachMounts().then(
        (paths) => {
          if (paths.length > 0) logger.error({ count: paths.length }, 'detached the FUSE mounts shutdown had not taken down');
        },
        (err: unknown) => logger.error({ err }, 'detaching the FUSE mounts left at shutdown failed'),
      );
      void Promise.race([detached, new Promise((resolve) => setTimeout(resolve, DETACH_AT_DEADLINE_MS))]).then(() => exit(1));
    }, SHUTDOWN_DEADLINE_MS).unref();
    // STOPPING=1 names our pid, so it must be sent while the process still exists.
    const stopping = notifier?.stopping().catch((err: unknown) => logger.warn({ err }, 'could not tell systemd the daemon is stopping'));
    Promise.resolve(stopping).then(() => daemon.stop()).then(
      () => {
        logger.info('stopped');
        void exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        void exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

export interface RunningDaemon {
  /** Where `lazysnap status` asks (root only). */
  adminSocket: string;
  stop(): Promise<void>;
  /** The shutdown step stop() is in, if it runs: what a shutdown past its deadline hung on. */
  currentStep(): string | undefined;
  /**
   * Lazily detaches the FUSE mounts this process serves, for a shutdown past
   * its deadline: once the process is gone they would be dead (ENOTCONN for
   * readers, EBUSY for rmdir). A FUSE manager's mounts are left alone.
   */
  detachMounts(): Promise<string[]>;
}

/** What the daemon says about itself in `lazysnap status`, and how it starts a FUSE manager like itself. */
export interface DaemonIdentity {
  version: string;
  /** The config file read, or "defaults". */
  config: string;
  /** The config file read (undefined: the defaults), passed on to a FUSE manager it starts. */
  configFile?: string | undefined;
  /** The `lazysnap` entry point a FUSE manager is started from; default: this process's. */
  cliPath?: string | undefined;
}

/** One step of undoing a start-up (or of a shutdown), named for the log when it is slow or hangs. */
interface Undo {
  step: string;
  run: () => Promise<void> | void;
}

/** A shutdown step slower than this is logged as a warning, with its name. */
const SLOW_STEP_MS = 2_000;

/**
 * Starts the daemon from a validated config. Order matters: the address is
 * checked before anything exists, ROOT is locked before anything under it
 * is read or changed, and whatever a failing start-up created is undone.
 */
export async function startDaemon(config: LazysnapConfig, logger: Logger, identity: DaemonIdentity = { version: 'unknown', config: 'unknown' }): Promise<RunningDaemon> {
  checkKeychainConfig(config);
  const startedAt = new Date();
  const adminSocket = adminSocketPath(config.address);
  // Refuse early when another daemon serves the socket or the address is unusable, before touching any root.
  await checkSocketAddress(config.address);
  await checkSocketAddress(adminSocket);
  const rootLock = await lockRoot(config.root);
  const undo: Undo[] = [{ step: 'releasing the root lock', run: () => rootLock.release() }];
  let remote: DaemonRemote | undefined;
  try {
    await makePrivateCacheDirectories(config.root);
    await prepareSocketPath(config.address);
    await prepareSocketPath(adminSocket);
    const metricsRegistry = new Registry();
    collectDefaultMetrics({ register: metricsRegistry, prefix: 'lazysnap_' });
    const metrics = new SnapshotterMetrics(metricsRegistry);
    const store = MetadataStore.open(join(config.root, 'metadata.lmdb'), (op, seconds) => metrics.observeLockHold(op, seconds));
    undo.push({ step: 'closing the metadata store', run: () => store.close() });
    const keychain = config.criKeychain.enableKeychain ? new CriKeychain() : undefined;
    remote = config.remote.enabled ? await openRemote(config, logger, metricsRegistry, keychain, identity) : undefined;
    const opened = remote;
    if (opened) undo.push({ step: opened.fuseManager ? 'disconnecting from the FUSE manager' : 'unmounting layers and closing the registry client', run: () => opened.close() });
    const snapshotter = await Snapshotter.open({
      root: config.root,
      store,
      logger: logger.child({ component: 'snapshotter' }),
      overlay: await detectOverlayFeatures(),
      ...(remote ? { remote: remote.mounter } : {}),
    });
    const server = new SnapshotsServer(createSnapshotsService(snapshotter, logger.child({ component: 'grpc' }), metrics));
    if (keychain) {
      const proxy = new ImageServiceProxy({ upstreamSocket: config.criKeychain.imageServicePath, keychain: remote?.keychain ?? keychain, logger: logger.child({ component: 'cri' }) });
      server.addService(imageServiceDefinition(), proxy.implementation());
      // Closed after the server's shutdown below (undo runs in reverse), so calls in flight still reach containerd.
      undo.push({ step: 'closing the CRI image service proxy', run: () => proxy.close() });
    }
    await server.listen(config.address);
    // Calls in flight may finish; shutting the server down also removes its socket file.
    undo.push({ step: 'finishing the gRPC calls in flight', run: () => server.shutdown(CALL_GRACE_MS) });
    const status = new StatusCollector({
      ...identity,
      address: config.address,
      root: config.root,
      startedAt,
      snapshots: () => store.infos(),
      ...(remote ? { remote: remote.status } : {}),
      ...(remote?.fuseManager ? { fuseManager: remote.fuseManager } : {}),
    });
    const pulls = new DaemonPulls(logger.child({ component: 'pull' }), remote?.mounter, config.address);
    const admin = await AdminServer.listen(adminSocket, {
      status: () => status.collect(),
      pull: (request, send) => pulls.run(request, send),
      refusePull: (request) => pulls.refusal(request),
    });
    undo.push({ step: 'closing the admin socket', run: () => admin.close() });
    await advertise(adminSocket, logger, undo);
    pulls.warmUp();
    if (config.metricsAddress) {
      const metricsServer = await serveMetrics(config.metricsAddress, metricsRegistry, remote?.metricsText);
      undo.push({
        step: 'closing the metrics listener',
        run: () =>
          new Promise<void>((resolve) => {
            metricsServer.close(() => resolve());
            // A scraper's keep-alive connection would otherwise hold close() open.
            metricsServer.closeAllConnections();
          }),
      });
    }
  } catch (err) {
    for (const failure of await undoAll(undo, logger)) logger.error({ err: failure }, 'undoing a failed start-up');
    throw err;
  }
  const shutdown: ShutdownProgress = { step: undefined };
  return {
    adminSocket,
    currentStep: () => shutdown.step,
    // The FUSE manager's mounts outlive the daemon on purpose; only this process's own would be left dead.
    detachMounts: () => (remote && !remote.fuseManager ? remote.mounter.cleanupStale() : Promise.resolve([])),
    async stop() {
      const failures = await undoAll(undo, logger, shutdown);
      if (failures.length > 0) throw new AggregateError(failures, `shutdown: ${failures.map((e) => String(e)).join('; ')}`);
    },
  };
}

/**
 * Leaves word of the admin socket for `lazysnap pull` (admin-directory.ts).
 * Only a shortcut: a daemon that cannot leave it still serves, and pulls
 * still find it through containerd.
 */
async function advertise(adminSocket: string, logger: Logger, undo: Undo[]): Promise<void> {
  const dir = adminDirectory();
  try {
    const withdraw = await advertiseAdminSocket(dir, adminSocket);
    // Pushed after the admin socket's own step, so it runs before the socket closes.
    undo.push({ step: 'withdrawing the advertised admin socket', run: withdraw });
  } catch (err) {
    logger.warn({ err, dir }, 'cannot advertise the admin socket; lazysnap pull finds this daemon through containerd instead (slower)');
  }
}

/** Which step a shutdown is in, read by its deadline. */
interface ShutdownProgress {
  step: string | undefined;
}

/** Runs the steps in reverse order of start-up, every one of them even when some fail; returns the failures. */
async function undoAll(undo: Undo[], logger: Logger, progress: ShutdownProgress = { step: undefined }): Promise<unknown[]> {
  const failures: unknown[] = [];
  for (const { step, run } of [...undo].reverse()) {
    progress.step = step;
    const started = performance.now();
    try {
      await run();
    } catch (err) {
      failures.push(err);
    }
    const ms = Math.round(performance.now() - started);
    if (ms >= SLOW_STEP_MS) logger.warn({ step, ms }, 'a shutdown step was slow');
    else logger.debug({ step, ms }, 'shutdown step done');
  }
  progress.step = undefined;
  return failures;
}

/** Thrown before anything starts: forwarding the CRI image service to our own socket would loop. */
export class KeychainConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeychainConfigError';
  }
}

function checkKeychainConfig(config: LazysnapConfig): void {
  if (config.criKeychain.enableKeychain && config.criKeychain.imageServicePath === config.address) {
    throw new KeychainConfigError(`[cri_keychain] image_service_path ${config.criKeychain.imageServicePath} is lazysnap's own socket (address); it must be containerd's CRI socket`);
  }
}

/** The remote side as the daemon uses it: in this process, or a FUSE manager's. */
interface DaemonRemote {
  mounter: RemoteMounter;
  status: NonNullable<StatusSources['remote']>;
  /** Present when a FUSE manager serves the mounts. */
  fuseManager?: () => Promise<FuseManagerStatus>;
  /** Where the CRI proxy keeps credentials, when not the daemon's own keychain alone. */
  keychain?: CredentialsKeeper;
  /** Metrics of another process, served after the daemon's own. */
  metricsText?: () => Promise<string>;
  close(): Promise<void>;
}

/** A unix socket path is at most 107 bytes on Linux. */
const MAX_SOCKET_PATH_BYTES = 107;

export class FuseManagerSocketError extends Error {
  constructor(readonly socket: string) {
    super(`the FUSE manager's socket ${socket} is longer than ${MAX_SOCKET_PATH_BYTES} bytes: choose a shorter root, or set [fuse_manager] enable = false`);
    this.name = 'FuseManagerSocketError';
  }
}

/**
 * With `[fuse_manager] enable` the mounts, registry reads and caches live in
 * the FUSE manager (started here when none runs) and outlive this process;
 * without it they are built here and end with it.
 */
async function openRemote(config: LazysnapConfig, logger: Logger, metrics: Registry, keychain: CriKeychain | undefined, identity: DaemonIdentity): Promise<DaemonRemote> {
  const limits = {
    memoryLimitBytes: config.remote.memoryCacheMiB * 1024 * 1024,
    diskLimitBytes: config.remote.diskCacheMiB * 1024 * 1024,
    tocCacheDir: tocCacheDirectory(config),
  };
  if (!config.fuseManager.enable) {
    // No start-up warm-up here: this event loop also answers containerd, whose
    // first dial of a proxy snapshotter gives the HTTP/2 handshake about a
    // second (grpc-go's first backoff); a warm-up on a loaded node made it miss
    // that once in CI ("timed out waiting for server handshake").
    const parts = await createRemoteParts(config, logger, metrics, keychain, new RecentErrors());
    return { mounter: parts.mounter, status: { ...limits, state: () => parts.state() }, close: () => parts.close() };
  }
  const socketPath = managerSocketPath(config.root);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) throw new FuseManagerSocketError(socketPath);
  const mounter = await ManagedMounter.connect({
    socketPath,
    logger: logger.child({ component: 'fuse-manager' }),
    start: () => startManagerProcess({ cliPath: identity.cliPath ?? process.argv[1] ?? '', root: config.root, configFile: identity.configFile, logLevel: config.logLevel }),
  });
  registerManagerMetrics(metrics, mounter);
  // The daemon serves once the manager is warm: a pull arriving during the
  // manager's warm-up shared two cores with it and started ~100 ms later.
  await mounter.warmedUp(MANAGER_WARM_UP_WAIT_MS);
  return {
    mounter,
    status: { ...limits, state: () => mounter.state() },
    fuseManager: () => mounter.status(),
    ...(keychain ? { keychain: forwardingKeychain(keychain, mounter) } : {}),
    metricsText: () => mounter.metricsText(),
    close: () => mounter.close(),
  };
}

export class MetricsListenError extends Error {
  constructor(
    readonly address: string,
    cause: Error,
  ) {
    super(`cannot serve metrics on ${address} (metrics_address / --metrics-address): ${cause.message}`, { cause });
    this.name = 'MetricsListenError';
  }
}

async function serveMetrics(address: string, registry: Registry, more?: () => Promise<string>): Promise<Server> {
  const listenAddress = parseListenAddress(address);
  // The config was validated; this only guards a caller that skipped it.
  if (!listenAddress) throw new MetricsListenError(address, new Error('not HOST:PORT'));
  const { host, port } = listenAddress;
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    Promise.all([registry.metrics(), more?.() ?? '']).then(([own, others]) => (others ? `${own}\n${others}` : own)).then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new MetricsListenError(address, err)));
    server.listen(port, host, () => resolve());
  });
  return server;
}
