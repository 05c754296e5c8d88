/**
 * `lazysnap serve`: the composition root of the daemon. Everything is built
 * here and passed in; nothing below reaches for globals.
 */
import { createServer, type Server } from 'node:http';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { loadConfig, type LazysnapConfig } from '../config/index.js';
import { ChunkCache } from '../layer/index.js';
import { DockerConfigCredentials, RegistryClient } from '../registry/index.js';
import { EstargzMounter } from '../snapshotter/remote/estargz-mounter.js';
import {
  MetadataStore,
  Snapshotter,
  SnapshotterMetrics,
  SnapshotsServer,
  createSnapshotsService,
  detectOverlayFeatures,
  prepareSocketPath,
} from '../snapshotter/index.js';

export interface ServeFlags {
  address?: string;
  root?: string;
  config?: string;
  logLevel?: string;
  metricsAddress?: string;
}

export async function serve(flags: ServeFlags): Promise<void> {
  const config = await loadConfig(flags.config, {
    address: flags.address,
    root: flags.root,
    logLevel: flags.logLevel as LazysnapConfig['logLevel'] | undefined,
    metricsAddress: flags.metricsAddress,
  });
  const logger = pino({ level: config.logLevel, base: { service: 'lazysnap' } }, pino.destination(2));
  const daemon = await startDaemon(config, logger);
  const stop = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    daemon.stop().then(
      () => {
        logger.info('stopped');
        logger.flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        logger.flush();
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

export interface RunningDaemon {
  stop(): Promise<void>;
}

export async function startDaemon(config: LazysnapConfig, logger: Logger): Promise<RunningDaemon> {
  // Refuse early when another daemon serves the socket, before touching its root.
  await prepareSocketPath(config.address);
  await mkdir(config.root, { recursive: true, mode: 0o700 });
  const metricsRegistry = new Registry();
  collectDefaultMetrics({ register: metricsRegistry, prefix: 'lazysnap_' });
  const metrics = new SnapshotterMetrics(metricsRegistry);
  const store = MetadataStore.open(join(config.root, 'metadata.lmdb'), (op, seconds) => metrics.observeLockHold(op, seconds));
  const remote = config.remote.enabled ? await createRemoteMounter(config, logger, metricsRegistry) : undefined;
  const snapshotter = await Snapshotter.open({
    root: config.root,
    store,
    logger: logger.child({ component: 'snapshotter' }),
    overlay: await detectOverlayFeatures(),
    ...(remote ? { remote: remote.mounter } : {}),
  });
  const server = new SnapshotsServer(createSnapshotsService(snapshotter, logger.child({ component: 'grpc' }), metrics));
  try {
    await server.listen(config.address);
  } catch (err) {
    await remote?.close();
    await store.close();
    throw err;
  }
  const metricsServer = config.metricsAddress ? await serveMetrics(config.metricsAddress, metricsRegistry) : undefined;
  logger.info({ address: config.address, root: config.root, metrics: config.metricsAddress || undefined }, 'lazysnap snapshotter serving');
  return {
    async stop() {
      await server.shutdown();
      if (metricsServer) await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
      await remote?.close();
      await store.close();
    },
  };
}

interface RemoteParts {
  mounter: EstargzMounter;
  close(): Promise<void>;
}

/** Registry client, chunk cache and the eStargz mounter, all rooted in config.root. */
async function createRemoteMounter(config: LazysnapConfig, logger: Logger, metrics: Registry): Promise<RemoteParts> {
  const log = logger.child({ component: 'remote' });
  const registry = new RegistryClient({
    platform: config.registry.platform,
    insecureHosts: config.registry.insecureHosts,
    credentials: new DockerConfigCredentials({ onWarning: (message: string) => log.warn(message) }),
    logger: log,
  });
  const cacheDir = join(config.root, 'cache');
  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  const cache = await ChunkCache.open({
    memoryBytes: config.remote.memoryCacheMiB * 1024 * 1024,
    diskDir: join(cacheDir, 'chunks'),
    diskBytes: config.remote.diskCacheMiB * 1024 * 1024,
    logger: log,
  });
  const mounter = new EstargzMounter({
    registry,
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
  });
  return {
    mounter,
    async close() {
      await mounter.close();
      await registry.close();
    },
  };
}

async function serveMetrics(address: string, registry: Registry): Promise<Server> {
  const separator = address.lastIndexOf(':');
  const host = separator > 0 ? address.slice(0, separator) : '127.0.0.1';
  const port = Number(address.slice(separator + 1));
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
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
