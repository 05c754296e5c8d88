/**
 * The remote side of lazysnap (registry client, chunk cache, TOC parser and
 * the eStargz mounter with its FUSE mounts), built from the config. The
 * daemon builds it in its own process when `[fuse_manager] enable` is off;
 * `lazysnap fuse-manager` builds it otherwise, and the daemon reaches it over
 * the manager's socket.
 */
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { registryErrorsReport, type RecentErrors } from '../admin/recent-errors.js';
import type { RemoteStateReport } from '../admin/index.js';
import type { LazysnapConfig } from '../config/index.js';
import type { CriKeychain } from '../cri/index.js';
import { ChunkCache, SMALL_TOC_JSON_BYTES, ThreadTocParser, inlineTocParser, type FetchEvent } from '../layer/index.js';
import { ChainedCredentials, DockerConfigCredentials, RegistryClient, type CredentialsSource } from '../registry/index.js';
import { RemoteMetrics } from '../snapshotter/metrics.js';
import type { RemoteLayerStatus } from '../snapshotter/remote/remote-layer-status.js';
import { EstargzMounter } from '../snapshotter/remote/estargz-mounter.js';
import { warmUpRemotePath } from '../snapshotter/remote/warm-up.js';
import { registryOptions } from './registry-options.js';

export interface RemoteParts {
  mounter: EstargzMounter;
  /**
   * Runs the remote path once on a made-up layer (see warm-up.ts), unless
   * real work comes first; resolves when done, never rejects (a failed step
   * is logged as a warning). close() stops it.
   */
  warmUp(): Promise<void>;
  /** Layers, caches and recent registry failures, for `lazysnap status`. */
  state(): Promise<RemoteStateReport>;
  close(): Promise<void>;
}

/**
 * ROOT/cache holds image content (chunks, TOCs), so it is root's alone even
 * when it was created by an older version or by hand with looser modes.
 */
export async function makePrivateCacheDirectories(root: string): Promise<void> {
  for (const dir of [join(root, 'cache'), join(root, 'cache', 'chunks'), join(root, 'cache', 'tocs')]) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
  }
}

/** Where the mounts of lazy layers live, whichever process serves them. */
export function layerMountRoot(config: LazysnapConfig): string {
  return join(config.root, 'layers');
}

/** The start-up warm-up's scratch directory (its made-up layer is mounted in there for a moment). */
export function warmUpDirectory(config: LazysnapConfig): string {
  return join(config.root, 'warm-up');
}

export function tocCacheDirectory(config: LazysnapConfig): string {
  return join(config.root, 'cache', 'tocs');
}

/**
 * Registry client, chunk cache and the eStargz mounter, all rooted in
 * config.root, with their metrics in `metrics`; failed registry requests also
 * go to registryErrors (for `lazysnap status`).
 */
export interface RemotePartsOptions {
  /** Parse every TOC but small ones on the worker thread, however big (the FUSE manager: its event loop answers FUSE requests). */
  neverParseOnMainThread?: boolean;
}

export async function createRemoteParts(
  config: LazysnapConfig,
  logger: Logger,
  metrics: Registry,
  keychain: CriKeychain | undefined,
  registryErrors: RecentErrors,
  options: RemotePartsOptions = {},
): Promise<RemoteParts> {
  await makePrivateCacheDirectories(config.root);
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
  const cache = await ChunkCache.open({
    memoryBytes: config.remote.memoryCacheMiB * 1024 * 1024,
    diskDir: join(config.root, 'cache', 'chunks'),
    diskBytes: config.remote.diskCacheMiB * 1024 * 1024,
    logger: log,
  });
  const tocParser = new ThreadTocParser({ logger: log, inlineBelowJsonBytes: SMALL_TOC_JSON_BYTES, ...(options.neverParseOnMainThread ? { inlineFromJsonBytes: Infinity } : {}) });
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
    fuseAnswerTimeoutMs: config.remote.fuseAnswerTimeoutSeconds * 1000,
    mountRoot: layerMountRoot(config),
    cache,
    tocCacheDir: tocCacheDirectory(config),
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
  const warmUpAbort = new AbortController();
  let warmingUp: Promise<void> | undefined;
  return {
    mounter,
    warmUp() {
      warmingUp ??= warmUpRemotePath({
        dir: warmUpDirectory(config),
        // Not the worker: it warms its own parser until its first request, which this would be.
        tocParser: inlineTocParser,
        logger: log.child({ warmUp: true }),
        busy: () => mounter.requestsStarted > 0,
        signal: warmUpAbort.signal,
      }).then(
        (result) => log.info({ ms: Math.round(result.ms), steps: result.steps, ...(result.stoppedAt ? { stoppedAt: result.stoppedAt } : {}) }, result.stoppedAt ? 'start-up warm-up gave way to real work' : 'start-up warm-up done: a made-up layer was opened, mounted and read'),
        (err: unknown) => log.warn({ err }, 'start-up warm-up failed: the first image may be slow to start, and the step named may fail for real layers too'),
      );
      return warmingUp;
    },
    state: async () => ({ layers: mounter.layerStatuses(), chunkCache: cache.stats(), registryErrors: registryErrorsReport(registryErrors) }),
    async close() {
      warmUpAbort.abort();
      await warmingUp;
      await mounter.close();
      await tocParser.close();
      await registry.close();
    },
  };
}
