/**
 * `lazysnap serve`: the composition root of the daemon. Everything is built
 * here and passed in; nothing below reaches for globals.
 */
import { createServer, type Server } from 'node:http';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { loadConfigWithSource, parseListenAddress, type LazysnapConfig } from '../config/index.js';
import { AdminServer, RecentErrors, StatusCollector, adminSocketPath, type StatusSources } from '../admin/index.js';
import { ChunkCache, ThreadTocParser, type FetchEvent } from '../layer/index.js';
import { ChainedCredentials, DockerConfigCredentials, RegistryClient, type CredentialsSource } from '../registry/index.js';
import { CriKeychain, ImageServiceProxy, imageServiceDefinition } from '../cri/index.js';
import { registryOptions } from './registry-options.js';
import { EstargzMounter } from '../snapshotter/remote/estargz-mounter.js';
import {
  MetadataStore,
  RemoteMetrics,
  type RemoteLayerStatus,
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

export interface ServeFlags {
  address?: string;
  root?: string;
  config?: string;
  logLevel?: string;
  logFormat?: string;
  metricsAddress?: string;
}

/** How long in-flight calls may run after SIGTERM before they are cut off. */
const CALL_GRACE_MS = 10_000;
/** The whole shutdown (calls, FUSE unmounts, metadata close) ends by then, whatever hangs. */
const SHUTDOWN_DEADLINE_MS = CALL_GRACE_MS + 5_000;
/** How long the last log lines may take to reach a slow reader before the process exits anyway. */
const LOG_DRAIN_MS = 1_000;

export class NotRootError extends Error {
  constructor(euid: number) {
    super(`lazysnap serve must run as root (it mounts overlay and FUSE filesystems and keeps image content private to root); running as uid ${euid}`);
    this.name = 'NotRootError';
  }
}

export async function serve(flags: ServeFlags): Promise<void> {
  const euid = process.geteuid?.() ?? 0;
  if (euid !== 0) throw new NotRootError(euid);
  const { config, file } = await loadConfigWithSource(flags.config, {
    address: flags.address,
    root: flags.root,
    logLevel: flags.logLevel as LazysnapConfig['logLevel'] | undefined,
    logFormat: flags.logFormat as LazysnapConfig['logFormat'] | undefined,
    metricsAddress: flags.metricsAddress,
  });
  const logSink = new LogSink(2, undefined, resolveLogFormat(config.logFormat, process.stderr.isTTY === true));
  const logger = pino({ level: config.logLevel, base: { service: 'lazysnap' }, formatters: { level: (label) => ({ level: levelName(label) }) } }, logSink);
  const version = packageVersion();
  const configSource = file ?? 'defaults';
  const daemon = await startDaemon(config, logger, { version, config: configSource });
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
      logger.error({ deadlineMs: SHUTDOWN_DEADLINE_MS }, 'shutdown did not finish in time; exiting anyway');
      void exit(1);
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
}

/** What the daemon says about itself in `lazysnap status`. */
export interface DaemonIdentity {
  version: string;
  /** The config file read, or "defaults". */
  config: string;
}

type Undo = () => Promise<void> | void;

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
  const undo: Undo[] = [() => rootLock.release()];
  try {
    await makePrivateCacheDirectories(config.root);
    await prepareSocketPath(config.address);
    await prepareSocketPath(adminSocket);
    const metricsRegistry = new Registry();
    collectDefaultMetrics({ register: metricsRegistry, prefix: 'lazysnap_' });
    const metrics = new SnapshotterMetrics(metricsRegistry);
    const store = MetadataStore.open(join(config.root, 'metadata.lmdb'), (op, seconds) => metrics.observeLockHold(op, seconds));
    undo.push(() => store.close());
    const keychain = config.criKeychain.enableKeychain ? new CriKeychain() : undefined;
    const registryErrors = new RecentErrors();
    const remote = config.remote.enabled ? await createRemoteMounter(config, logger, metricsRegistry, keychain, registryErrors) : undefined;
    if (remote) undo.push(() => remote.close());
    const snapshotter = await Snapshotter.open({
      root: config.root,
      store,
      logger: logger.child({ component: 'snapshotter' }),
      overlay: await detectOverlayFeatures(),
      ...(remote ? { remote: remote.mounter } : {}),
    });
    const server = new SnapshotsServer(createSnapshotsService(snapshotter, logger.child({ component: 'grpc' }), metrics));
    if (keychain) {
      const proxy = new ImageServiceProxy({ upstreamSocket: config.criKeychain.imageServicePath, keychain, logger: logger.child({ component: 'cri' }) });
      server.addService(imageServiceDefinition(), proxy.implementation());
      // Closed after the server's shutdown below (undo runs in reverse), so calls in flight still reach containerd.
      undo.push(() => proxy.close());
    }
    await server.listen(config.address);
    // Calls in flight may finish; shutting the server down also removes its socket file.
    undo.push(() => server.shutdown(CALL_GRACE_MS));
    const status = new StatusCollector({
      ...identity,
      address: config.address,
      root: config.root,
      startedAt,
      snapshots: () => store.infos(),
      ...(remote ? { remote: remote.status } : {}),
      registryErrors,
    });
    const admin = await AdminServer.listen(adminSocket, { status: () => status.collect() });
    undo.push(() => admin.close());
    if (config.metricsAddress) {
      const metricsServer = await serveMetrics(config.metricsAddress, metricsRegistry);
      undo.push(
        () =>
          new Promise<void>((resolve) => {
            metricsServer.close(() => resolve());
            // A scraper's keep-alive connection would otherwise hold close() open.
            metricsServer.closeAllConnections();
          }),
      );
    }
  } catch (err) {
    for (const failure of await undoAll(undo)) logger.error({ err: failure }, 'undoing a failed start-up');
    throw err;
  }
  return {
    adminSocket,
    async stop() {
      const failures = await undoAll(undo);
      if (failures.length > 0) throw new AggregateError(failures, `shutdown: ${failures.map((e) => String(e)).join('; ')}`);
    },
  };
}

/** Runs the steps in reverse order of start-up, every one of them even when some fail; returns the failures. */
async function undoAll(undo: Undo[]): Promise<unknown[]> {
  const failures: unknown[] = [];
  for (const step of [...undo].reverse()) {
    try {
      await step();
    } catch (err) {
      failures.push(err);
    }
  }
  return failures;
}

/**
 * ROOT/cache holds image content (chunks, TOCs), so it is root's alone even
 * when it was created by an older version or by hand with looser modes.
 */
async function makePrivateCacheDirectories(root: string): Promise<void> {
  for (const dir of [join(root, 'cache'), join(root, 'cache', 'chunks'), join(root, 'cache', 'tocs')]) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
  }
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

interface RemoteParts {
  mounter: EstargzMounter;
  /** What `lazysnap status` reads of the remote side. */
  status: NonNullable<StatusSources['remote']>;
  close(): Promise<void>;
}

/**
 * Registry client, chunk cache and the eStargz mounter, all rooted in
 * config.root, with their metrics; failed registry requests also go to
 * registryErrors (for `lazysnap status`).
 */
async function createRemoteMounter(config: LazysnapConfig, logger: Logger, metrics: Registry, keychain: CriKeychain | undefined, registryErrors: RecentErrors): Promise<RemoteParts> {
  const log = logger.child({ component: 'remote' });
  const dockerConfig = new DockerConfigCredentials({ onWarning: (message: string) => log.warn(message) });
  // A pod's pull secret is more specific than the node's docker config, so it is asked first.
  const credentials: CredentialsSource = keychain ? new ChainedCredentials([keychain, dockerConfig]) : dockerConfig;
  const registry = new RegistryClient({
    ...registryOptions(config, log),
    credentials,
    logger: log,
  });
  // Created private by makePrivateCacheDirectories.
  const cacheDir = join(config.root, 'cache');
  const cache = await ChunkCache.open({
    memoryBytes: config.remote.memoryCacheMiB * 1024 * 1024,
    diskDir: join(cacheDir, 'chunks'),
    diskBytes: config.remote.diskCacheMiB * 1024 * 1024,
    logger: log,
  });
  const tocParser = new ThreadTocParser({ logger: log });
  // The gauges are read at scrape time, after `mounter` exists.
  const remoteMetrics: RemoteMetrics = new RemoteMetrics(metrics, { layers: (): RemoteLayerStatus[] => mounter.layerStatuses(), chunkCache: () => cache.stats() });
  const observeFetch = (event: FetchEvent): void => {
    remoteMetrics.observeFetch(event);
    if (event.outcome === 'error') {
      registryErrors.record({ ref: event.ref, digest: event.digest, kind: event.kind, message: event.error instanceof Error ? event.error.message : String(event.error) });
    }
  };
  const mounter: EstargzMounter = new EstargzMounter({
    registry,
    fetchObserver: observeFetch,
    onRegistryError: (failure) => registryErrors.record(failure),
    fuseObserver: remoteMetrics.observeFuse,
    mountRoot: join(config.root, 'layers'),
    cache,
    tocCacheDir: join(cacheDir, 'tocs'),
    logger: log,
    metrics,
    allowUnverified: config.remote.allowUnverified,
    fetchTimeoutMs: config.remote.fetchTimeoutSeconds * 1000,
    prefetch: config.remote.prefetch,
    backgroundFetch: config.remote.backgroundFetch,
    backgroundFetchConcurrency: config.remote.backgroundFetchConcurrency,
    backgroundFetchIdleMs: config.remote.backgroundFetchIdleSeconds * 1000,
    backgroundFetchBytesPerSecond: config.remote.backgroundFetchBandwidthMiB * 1024 * 1024,
    tocMemoryBytes: config.remote.tocMemoryMiB * 1024 * 1024,
    tocParser,
  });
  return {
    mounter,
    status: {
      layers: () => mounter.layerStatuses(),
      chunkCache: () => cache.stats(),
      memoryLimitBytes: config.remote.memoryCacheMiB * 1024 * 1024,
      diskLimitBytes: config.remote.diskCacheMiB * 1024 * 1024,
      tocCacheDir: join(cacheDir, 'tocs'),
    },
    async close() {
      await mounter.close();
      await tocParser.close();
      await registry.close();
    },
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

async function serveMetrics(address: string, registry: Registry): Promise<Server> {
  const listenAddress = parseListenAddress(address);
  // The config was validated; this only guards a caller that skipped it.
  if (!listenAddress) throw new MetricsListenError(address, new Error('not HOST:PORT'));
  const { host, port } = listenAddress;
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
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
