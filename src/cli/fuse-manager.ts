/**
 * `lazysnap fuse-manager`: the process that serves the FUSE mounts of lazy
 * layers (registry reads, chunk caches, verification, background fetch), so
 * that they outlive restarts, crashes and upgrades of the daemon. It does
 * nothing else: no gRPC, no metadata, no parsing of requests from
 * containerd, so nothing unrelated stands between a reader and its answer.
 *
 * One per root (ROOT/fuse-manager/lock). It ends on SIGTERM or SIGINT
 * (unmounting everything: containers on its layers lose them) and when its
 * root is deleted (a test or benchmark threw the whole state away).
 */
import { chmod } from 'node:fs/promises';
import pino from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { RecentErrors } from '../admin/recent-errors.js';
import { loadConfigWithSource, type LazysnapConfig } from '../config/index.js';
import { CriKeychain } from '../cri/keychain.js';
import { FuseManagerServer, managerDirectory, managerSocketPath } from '../fusemanager/index.js';
import { lockRoot } from '../snapshotter/root-lock.js';
import { levelName, resolveLogFormat } from './log-format.js';
import { LogSink } from './log-sink.js';
import { createRemoteParts } from './remote-parts.js';
import { NotRootError } from './not-root.js';
import { notifierFromEnvironment } from './systemd-notify.js';
import { packageVersion } from './version.js';

export interface FuseManagerFlags {
  root?: string;
  config?: string;
  logLevel?: string;
  logFormat?: string;
}

/** How often the manager checks that its root still exists. */
const ROOT_CHECK_MS = 2_000;
/** Unmounting every layer at shutdown ends by then, whatever hangs. */
const SHUTDOWN_DEADLINE_MS = 15_000;
/** Past the deadline, detaching what is still mounted gets this long before the process exits. */
const DETACH_AT_DEADLINE_MS = 5_000;

export async function fuseManager(flags: FuseManagerFlags): Promise<void> {
  const euid = process.geteuid?.() ?? 0;
  if (euid !== 0) throw new NotRootError('fuse-manager', euid);
  const { config } = await loadConfigWithSource(flags.config, {
    root: flags.root,
    logLevel: flags.logLevel as LazysnapConfig['logLevel'] | undefined,
    logFormat: flags.logFormat as LazysnapConfig['logFormat'] | undefined,
  });
  const logSink = new LogSink(2, undefined, resolveLogFormat(config.logFormat, process.stderr.isTTY === true));
  const logger = pino({ level: config.logLevel, base: { service: 'lazysnap-fuse-manager' }, formatters: { level: (label) => ({ level: levelName(label) }) } }, logSink);
  const version = packageVersion();
  // Its own lock, not the daemon's: both run on one root at once, but only one manager.
  const lock = await lockRoot(managerDirectory(config.root));
  // The control socket is created in here: root's alone, also when an older directory was looser.
  await chmod(managerDirectory(config.root), 0o700);
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics, prefix: 'lazysnap_fuse_manager_' });
  const keychain = config.criKeychain.enableKeychain ? new CriKeychain() : undefined;
  const parts = await createRemoteParts(config, logger, metrics, keychain, new RecentErrors(), { neverParseOnMainThread: true });
  const stale = await parts.mounter.cleanupStale();
  if (stale.length > 0) logger.info({ count: stale.length }, 'removed FUSE mounts a previous manager or daemon left behind');
  const server = await FuseManagerServer.listen(
    managerSocketPath(config.root),
    {
      mounter: parts.mounter,
      state: () => parts.state(),
      metrics: () => metrics.metrics(),
      mounts: () => parts.mounter.layerStatuses().filter((layer) => layer.mountpoint !== undefined).length,
      // The warm-up runs once (below); asking for it only waits for its end.
      warmedUp: () => parts.warmUp(),
      keychain,
    },
    logger,
    version,
  );
  logger.info({ version, pid: process.pid, root: config.root, socket: server.socketPath }, 'lazysnap FUSE manager serving');
  // In the background, after readiness: the daemon waits for this socket, then for the warm-up's end (warmedUp).
  void parts.warmUp();
  // Run as a unit of its own (examples/lazysnap-fuse-manager.service): the daemon's unit is ordered after this readiness.
  const notifier = notifierFromEnvironment(process.env, process.pid);
  void notifier?.ready(`serving FUSE mounts for ${config.root}`).catch((err: unknown) => logger.error({ err }, 'could not tell systemd the FUSE manager is ready'));

  let stopping = false;
  const stop = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason }, 'FUSE manager shutting down; unmounting every layer');
    // Which step a shutdown past its deadline was stuck in, for the log.
    let step = 'closing the control socket';
    setTimeout(() => {
      logger.error({ deadlineMs: SHUTDOWN_DEADLINE_MS, step }, 'shutdown did not finish in time; detaching every mount left and exiting anyway');
      // Mounts left behind would be dead once this process is gone (reads get ENOTCONN, rmdir EBUSY): take them off first.
      const detached = parts.mounter.cleanupStale().then(
        (paths) => logger.error({ count: paths.length }, 'detached the FUSE mounts shutdown had not taken down'),
        (err: unknown) => logger.error({ err }, 'detaching the FUSE mounts left at shutdown failed'),
      );
      void Promise.race([detached, new Promise((resolve) => setTimeout(resolve, DETACH_AT_DEADLINE_MS))])
        .then(() => logSink.drain(1_000))
        .then(() => process.exit(1));
    }, SHUTDOWN_DEADLINE_MS).unref();
    clearInterval(rootCheck);
    server
      .close()
      .then(() => {
        step = 'unmounting layers and closing the registry client';
        return parts.close();
      })
      .then(
        () => {
          lock.release();
          logger.info('FUSE manager stopped');
          void logSink.drain(1_000).then(() => process.exit(0));
        },
        (err: unknown) => {
          logger.error({ err }, 'FUSE manager shutdown failed');
          void logSink.drain(1_000).then(() => process.exit(1));
        },
      );
  };
  const rootCheck = setInterval(() => {
    if (!lock.isCurrent()) stop(`its root ${config.root} was removed (or removed and made again)`);
  }, ROOT_CHECK_MS);
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // A daemon started us detached; a terminal's hangup is not a reason to drop mounts.
  process.on('SIGHUP', () => logger.info('SIGHUP ignored'));
}
