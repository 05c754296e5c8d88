/**
 * The RemoteMounter over eStargz: resolves a layer's TOC digest, opens the
 * layer once per digest (footer and TOC fetched and verified once, however
 * many Prepares race for it), and mounts it read-only over FUSE wherever a
 * snapshot needs it. Chunks are shared through one cache for all layers.
 */
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { cleanupStaleMounts, isMounted, mountLayer, type MountedLayer } from '../../fuse/index.js';
import { DEFAULT_TOC_MEMORY_BYTES, TocMemoryBudget, openRemoteLayer, registryFetcher, type ChunkCache, type RemoteLayer } from '../../layer/index.js';
import type { RegistryClient } from '../../registry/index.js';
import { KeyedMutex, SingleFlight } from '../../sync/index.js';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { RemoteLayerRef } from '../metadata-store.js';
import type { RemoteMounter } from './remote-mounter.js';
import type { RemoteRequest } from './remote-request.js';
import { TocDigestResolver } from './toc-digest-resolver.js';

export interface EstargzMounterOptions {
  registry: RegistryClient;
  /** Each layer is mounted at <mountRoot>/<digest hex>. */
  mountRoot: string;
  cache: ChunkCache;
  /** Verified TOCs are kept here so a restart needs no registry for cached layers. */
  tocCacheDir: string;
  logger: Logger;
  metrics: Registry;
  allowUnverified: boolean;
  fetchTimeoutMs: number;
  prefetch: boolean;
  backgroundFetch: boolean;
  backgroundFetchConcurrency: number;
  /** Memory all open layers' parsed TOCs may hold together (`[remote] toc_memory_mib`); default 512 MiB. A layer past it is not served remotely. */
  tocMemoryBytes?: number | undefined;
}

interface OpenLayer {
  layer: RemoteLayer;
  /** Closes a layer that was resolved but never mounted (its Prepare failed or lost a race). */
  unusedTimer?: NodeJS.Timeout;
}

/** How long a resolved layer stays open waiting for its first mount. */
const UNUSED_LAYER_MS = 5 * 60_000;

interface LayerMount {
  mount: MountedLayer;
  references: number;
}

export class EstargzMounter implements RemoteMounter {
  private readonly tocDigests: TocDigestResolver;
  private readonly opening = new SingleFlight<OpenLayer>();
  private readonly layers = new Map<string, OpenLayer>();
  private readonly mounted = new Map<string, LayerMount>();
  private readonly unmounting = new KeyedMutex();
  private readonly layerOpens: Counter<'outcome'>;
  private readonly tocBudget: TocMemoryBudget;

  constructor(private readonly options: EstargzMounterOptions) {
    this.tocDigests = new TocDigestResolver(options.registry);
    this.tocBudget = new TocMemoryBudget(options.tocMemoryBytes ?? DEFAULT_TOC_MEMORY_BYTES);
    this.layerOpens = new Counter({
      name: 'lazysnap_remote_layer_opens_total',
      help: 'Remote layers opened (footer and TOC read and verified), by outcome.',
      labelNames: ['outcome'],
      registers: [options.metrics],
    });
  }

  async resolve(request: RemoteRequest): Promise<RemoteLayerRef | undefined> {
    const { ref, layerDigest } = request;
    let tocDigest = request.tocDigest;
    let size: number | undefined;
    if (!tocDigest) {
      const found = await this.tocDigests.lookup(ref, layerDigest, request.manifestDigest);
      tocDigest = found.tocDigest;
      size = found.size;
    }
    if (!tocDigest && !this.options.allowUnverified) return undefined;
    const layerRef: RemoteLayerRef = { ref, digest: layerDigest, tocDigest: tocDigest ?? '', ...(size !== undefined ? { size } : {}) };
    // Opening verifies the TOC: a layer that is not eStargz, or whose TOC lies, is not remote.
    await this.open(layerRef);
    return layerRef;
  }

  async acquire(layerRef: RemoteLayerRef): Promise<string> {
    const mountpoint = this.mountpointOf(layerRef);
    // Serialized with release() per layer, so a last release and a new acquire cannot interleave.
    return this.unmounting.withLock(layerRef.digest, async () => {
      let entry = this.mounted.get(layerRef.digest);
      if (!entry) {
        entry = await this.mountLayer(layerRef, mountpoint);
        this.mounted.set(layerRef.digest, entry);
      }
      entry.references++;
      return mountpoint;
    });
  }

  async release(layerRef: RemoteLayerRef): Promise<void> {
    await this.unmounting.withLock(layerRef.digest, async () => {
      const entry = this.mounted.get(layerRef.digest);
      if (!entry || --entry.references > 0) return;
      this.mounted.delete(layerRef.digest);
      await entry.mount.unmount();
      const open = this.layers.get(layerRef.digest);
      if (open) {
        // Nothing serves this layer any more: free its memory; its chunks stay in the disk cache.
        this.layers.delete(layerRef.digest);
        await open.layer.close();
      }
    });
  }

  cleanupStale(): Promise<string[]> {
    return cleanupStaleMounts(this.options.mountRoot, this.options.logger);
  }

  private mountpointOf(layerRef: RemoteLayerRef): string {
    return join(this.options.mountRoot, layerRef.digest.replace(/^sha256:/, ''));
  }

  private async mountLayer(layerRef: RemoteLayerRef, mountpoint: string): Promise<LayerMount> {
    const open = await this.open(layerRef);
    clearTimeout(open.unusedTimer);
    await mkdir(mountpoint, { recursive: true, mode: 0o755 });
    if (await isMounted(mountpoint)) await cleanupStaleMounts(mountpoint, this.options.logger);
    const mount = await mountLayer(open.layer, mountpoint, { logger: this.options.logger, fsname: 'lazysnap', subtype: 'estargz' });
    if (this.options.backgroundFetch) {
      open.layer.startBackgroundFetch().then(
        (result) => this.options.logger.debug({ layer: layerRef.digest, result }, 'background fetch finished'),
        (err: unknown) => this.options.logger.warn({ err, layer: layerRef.digest }, 'background fetch stopped; chunks will be fetched on first read'),
      );
    }
    return { mount, references: 0 };
  }

  async close(): Promise<void> {
    for (const [digest, entry] of [...this.mounted.entries()]) {
      this.mounted.delete(digest);
      await entry.mount.unmount().catch((err: unknown) => this.options.logger.error({ err, layer: digest }, 'unmount at shutdown failed'));
    }
    for (const open of this.layers.values()) {
      clearTimeout(open.unusedTimer);
      await open.layer.close();
    }
    this.layers.clear();
  }

  private async open(layerRef: RemoteLayerRef): Promise<OpenLayer> {
    const existing = this.layers.get(layerRef.digest);
    if (existing) return existing;
    return this.opening.do(layerRef.digest, async () => {
      const { registry, logger } = this.options;
      try {
        const layer = await openRemoteLayer({
          ref: layerRef.ref,
          digest: layerRef.digest,
          ...(layerRef.size !== undefined ? { size: layerRef.size } : {}),
          expectedTocDigest: layerRef.tocDigest || undefined,
          allowUnverified: this.options.allowUnverified,
          fetcher: registryFetcher(registry, layerRef.ref, layerRef.digest),
          cache: this.options.cache,
          tocCacheDir: this.options.tocCacheDir,
          fetchTimeoutMs: this.options.fetchTimeoutMs,
          backgroundFetchConcurrency: this.options.backgroundFetchConcurrency,
          tocBudget: this.tocBudget,
          logger: logger.child({ layer: layerRef.digest }),
        });
        if (this.options.prefetch) {
          layer.prefetch().catch((err: unknown) => logger.warn({ err, layer: layerRef.digest }, 'prefetch failed; files will be fetched on first read'));
        }
        const open: OpenLayer = { layer };
        open.unusedTimer = setTimeout(() => {
          if (this.mounted.has(layerRef.digest) || this.layers.get(layerRef.digest) !== open) return;
          this.layers.delete(layerRef.digest);
          layer.close().catch((err: unknown) => logger.warn({ err, layer: layerRef.digest }, 'closing an unused layer failed'));
        }, UNUSED_LAYER_MS);
        open.unusedTimer.unref();
        this.layers.set(layerRef.digest, open);
        this.layerOpens.inc({ outcome: 'ok' });
        return open;
      } catch (err) {
        this.layerOpens.inc({ outcome: 'error' });
        throw err;
      }
    });
  }
}
