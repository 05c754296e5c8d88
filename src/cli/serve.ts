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
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'lazysnap_' });
  const metrics = new SnapshotterMetrics(registry);
  const store = MetadataStore.open(join(config.root, 'metadata.lmdb'), (op, seconds) => metrics.observeLockHold(op, seconds));
  const snapshotter = await Snapshotter.open({
    root: config.root,
    store,
    logger: logger.child({ component: 'snapshotter' }),
    overlay: await detectOverlayFeatures(),
  });
  const server = new SnapshotsServer(createSnapshotsService(snapshotter, logger.child({ component: 'grpc' }), metrics));
  try {
    await server.listen(config.address);
  } catch (err) {
    await store.close();
    throw err;
  }
  const metricsServer = config.metricsAddress ? await serveMetrics(config.metricsAddress, registry) : undefined;
  logger.info({ address: config.address, root: config.root, metrics: config.metricsAddress || undefined }, 'lazysnap snapshotter serving');
  return {
    async stop() {
      await server.shutdown();
      if (metricsServer) await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
      await store.close();
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
