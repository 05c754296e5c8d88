/**
 * The RemoteMounter over eStargz: resolves a layer's TOC digest, opens the
 * layer once per identity (blob digest + verified TOC digest: footer and TOC
 * fetched and verified once, however many Prepares race for it), and mounts it
 * read-only over FUSE wherever a snapshot needs it. Chunks are shared through
 * one cache for all layers, keyed by their own verified digests.
 *
 * The mounts live under a directory only root can enter: images carry setuid
 * binaries, and the mounts honour setuid and allow other users.
 *
 * A layer whose background fetch finds that the whole blob does not hash to its
 * digest is poisoned: its reads fail, and it is never handed to a new snapshot
 * (the layer is then downloaded, and containerd checks the download).
 */
import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import { Counter, type Registry } from 'prom-client';
import { MountpointBusyError, cleanupStaleMounts, mountLayer, type FuseOperationObserver, type MountedLayer } from '../../fuse/index.js';
import {
  BandwidthLimiter, DEFAULT_TOC_MEMORY_BYTES, ForegroundActivity, LayerPoisonedError, TocMemoryBudgetError, TocMemoryBudget, observedFetcher, openRemoteLayer, registryFetcher, type BackgroundFetchResult, type BlobFetcher, type FetchObserver, type ChunkCache, type RemoteLayer, type TocParser,
} from '../../layer/index.js';
import { TOC_DIGEST_ANNOTATION } from '../../estargz/index.js';
import { RegistryError, type RegistryClient } from '../../registry/index.js';
import { KeyedMutex, SingleFlight } from '../../sync/index.js';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { RemoteLayerRef } from '../metadata-store.js';
import type { ImageToOpen, NotRemote, RemoteMounter } from './remote-mounter.js';
import type { RemoteLayerStatus } from './remote-layer-status.js';
import type { RemoteRequest } from './remote-request.js';
import { layerIdentity } from './layer-identity.js';
import { TocDigestResolver } from './toc-digest-resolver.js';

export interface EstargzMounterOptions {
  registry: RegistryClient;
  /** Each layer is mounted at <mountRoot>/<identity dir name>; made 0700 (root only) at start. */
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
  /** Background fetch starts only after no foreground read on any layer for this long (default 5 s). */
  backgroundFetchIdleMs?: number | undefined;
  /** Cap on background fetch bandwidth, all layers together, in bytes per second; 0 or undefined: none. */
  backgroundFetchBytesPerSecond?: number | undefined;
  /** Told of every registry request a layer makes (metrics, recent errors). */
  fetchObserver?: FetchObserver | undefined;
  /** Told of registry failures outside blob reads (manifests, while resolving a layer's TOC digest). */
  onRegistryError?: ((failure: { ref: string; digest: string; kind: string; message: string }) => void) | undefined;
  /** Told of every FUSE request a mount answers (metrics). */
  fuseObserver?: FuseOperationObserver | undefined;
  /** Every FUSE request is answered within this many ms, EIO at worst. */
  fuseAnswerTimeoutMs?: number | undefined;
  /** Memory all open layers' parsed TOCs may hold together (`[remote] toc_memory_mib`); default 512 MiB. A layer past it is not served remotely. */
  tocMemoryBytes?: number | undefined;
  /** Where TOCs are parsed (the daemon passes a worker-thread parser, which it owns and closes); inline when absent. */
  tocParser?: TocParser | undefined;
}

/** Layers of one image opened at once ahead of their Prepares: registry round trips overlap, TOC parses still take turns. */
const IMAGE_OPEN_CONCURRENCY = 8;

/** stargz-snapshotter waits 5 s of silence too: long enough for a container's start-up burst of reads. */
export const DEFAULT_BACKGROUND_FETCH_IDLE_MS = 5_000;

interface OpenLayer {
  layer: RemoteLayer;
  /** Closes a layer that was resolved but never mounted (its Prepare failed or lost a race). */
  unusedTimer?: NodeJS.Timeout;
}

/** How long a resolved layer stays open waiting for its first mount. */
const UNUSED_LAYER_MS = 5 * 60_000;

interface LayerMount {
  mount: MountedLayer;
  /** Who holds the mount (snapshot ids); the last one to let go unmounts it. */
  holders: Set<string>;
}

/** Every map, flight and lock below is keyed by layerIdentity(...).key, never by blob digest alone. */
export class EstargzMounter implements RemoteMounter {
  private readonly tocDigests: TocDigestResolver;
  private readonly opening = new SingleFlight<OpenLayer>();
  private readonly layers = new Map<string, OpenLayer>();
  private readonly mounted = new Map<string, LayerMount>();
  private readonly unmounting = new KeyedMutex();
  private readonly layerOpens: Counter<'outcome'>;
  private readonly layersPoisoned: Counter;
  /** Layers whose whole blob did not hash to its digest, for the daemon's lifetime. */
  private readonly poisoned = new Map<string, LayerPoisonedError>();
  /** Layers whose whole blob matched its digest: a reopen need not hash it again. */
  private readonly blobVerified = new Set<string>();
  private mountRootReady: Promise<void> | undefined;
  private readonly tocBudget: TocMemoryBudget;
  /** Images whose layers were opened ahead of their Prepares, recently. */
  private readonly imagesOpened = new LRUCache<string, true>({ max: 256, ttl: UNUSED_LAYER_MS });
  private readonly foreground: ForegroundActivity;
  private readonly backgroundBandwidth: BandwidthLimiter;
  /** Set by close(): nothing new is opened or mounted ahead of a Prepare. */
  private closing = false;
  /** Image set-ups (openImageLayers) still running. */
  private readonly openingAhead = new Set<Promise<void>>();
  private requests = 0;

  constructor(private readonly options: EstargzMounterOptions) {
    this.tocDigests = new TocDigestResolver(options.registry);
    this.tocBudget = new TocMemoryBudget(options.tocMemoryBytes ?? DEFAULT_TOC_MEMORY_BYTES);
    this.foreground = new ForegroundActivity(options.backgroundFetchIdleMs ?? DEFAULT_BACKGROUND_FETCH_IDLE_MS);
    this.backgroundBandwidth = new BandwidthLimiter(options.backgroundFetchBytesPerSecond ?? 0);
    this.layerOpens = new Counter({
      name: 'lazysnap_remote_layer_opens_total',
      help: 'Remote layers opened (footer and TOC read and verified), by outcome.',
      labelNames: ['outcome'],
      registers: [options.metrics],
    });
    this.layersPoisoned = new Counter({
      name: 'lazysnap_remote_layer_poisoned_total',
      help: 'Remote layers whose whole blob, once fetched, did not hash to the layer digest (reads then fail with EIO).',
      registers: [options.metrics],
    });
  }

  /** The layer to serve lazily, or undefined to download it (decide() also says why). */
  async resolve(request: RemoteRequest): Promise<RemoteLayerRef | undefined> {
    const decision = await this.decide(request);
    return 'notRemote' in decision ? undefined : decision;
  }

  /** decide(), openImage() and acquire() calls so far: a start-up warm-up gives way once real work has come. */
  get requestsStarted(): number {
    return this.requests;
  }

  /**
   * Counts a request; the first also stops the TOC parser's own warm-up,
   * which would otherwise go on taking a core from the pull it prepares for
   * (measured: a quarter of a second of CPU during the first pull after a start).
   */
  private realWorkStarted(): void {
    if (this.requests++ === 0) this.options.tocParser?.stopWarmUp?.();
  }

  async decide(request: RemoteRequest): Promise<RemoteLayerRef | NotRemote> {
    this.realWorkStarted();
    const { ref, layerDigest } = request;
    this.openImageLayers(request.ref, request.manifestDigest);
    let tocDigest = request.tocDigest;
    let size: number | undefined;
    if (!tocDigest) {
      const found = await this.tocDigests.lookup(ref, layerDigest, request.manifestDigest).catch((err: unknown) => this.reportRegistryError(err, ref, request.manifestDigest ?? layerDigest));
      tocDigest = found.tocDigest;
      size = found.size;
    }
    if (!tocDigest && !this.options.allowUnverified) {
      return { notRemote: `the manifest gives no TOC digest (${TOC_DIGEST_ANNOTATION}) for this layer, so it is not eStargz or cannot be verified, and [remote] allow_unverified is off` };
    }
    const layerRef: RemoteLayerRef = { ref, digest: layerDigest, tocDigest: tocDigest ?? '', ...(size !== undefined ? { size } : {}) };
    const { key } = layerIdentity(layerRef);
    if (this.poisoned.has(key)) return { notRemote: 'the layer was found poisoned earlier (its whole blob did not hash to its digest)' };
    // Opening verifies the TOC: a layer that is not eStargz, or whose TOC lies, is not remote (the error says why).
    const open = await this.openForUse(layerRef);
    if (open.layer.poisoned !== undefined) return { notRemote: 'the layer is poisoned (its whole blob did not hash to its digest)' };
    return layerRef;
  }

  /**
   * The first request for an image opens all of its eStargz layers at once
   * (bounded), so that the Prepares that follow, one per layer and in order,
   * find their layer open instead of each paying footer, TOC and parse in turn.
   * Best effort: a layer that fails here is tried again by its own Prepare.
   */
  openImage(image: ImageToOpen): void {
    this.realWorkStarted();
    this.openImageLayers(image.ref, image.manifestDigest);
  }

  private openImageLayers(ref: string, manifestDigest: string | undefined): void {
    const image = manifestDigest ? `${ref}@${manifestDigest}` : ref;
    if (this.closing || this.imagesOpened.has(image)) return;
    this.imagesOpened.set(image, true);
    const { logger } = this.options;
    const task = (async () => {
      const listed = await this.tocDigests.layers(ref, manifestDigest).catch((err: unknown) => this.reportRegistryError(err, ref, manifestDigest ?? ''));
      const layers = listed.filter((layer) => layer.tocDigest !== undefined);
      const queue = layers.map((layer): RemoteLayerRef => ({
        ref, digest: layer.digest, tocDigest: layer.tocDigest!, ...(layer.size !== undefined ? { size: layer.size } : {}),
      }));
      const worker = async (): Promise<void> => {
        for (let next = queue.shift(); next !== undefined && !this.closing; next = queue.shift()) {
          const layerRef = next;
          if (this.poisoned.has(layerIdentity(layerRef).key)) continue;
          await this.open(layerRef)
            .then(() => this.premount(layerRef))
            .catch((err: unknown) => logger.debug({ err, ref: layerRef.ref, layer: layerRef.digest }, 'opening a layer ahead of its Prepare failed'));
        }
      };
      await Promise.all(Array.from({ length: Math.min(IMAGE_OPEN_CONCURRENCY, queue.length) }, worker));
    })().catch((err: unknown) => logger.debug({ err, ref }, 'listing the image\'s layers ahead of their Prepares failed'));
    // close() waits for it: a mount it makes after shutdown began must still be taken down.
    this.openingAhead.add(task);
    void task.finally(() => this.openingAhead.delete(task));
  }

  async acquire(layerRef: RemoteLayerRef, holder: string): Promise<string> {
    this.realWorkStarted();
    const identity = layerIdentity(layerRef);
    const mountpoint = join(this.options.mountRoot, identity.dirName);
    // Serialized with release() per layer, so a last release and a new acquire cannot interleave.
    return this.unmounting.withLock(identity.key, async () => {
      let entry = this.mounted.get(identity.key);
      if (!entry) {
        const poisoned = this.poisoned.get(identity.key);
        if (poisoned !== undefined) throw poisoned;
        entry = await this.mountLayer(layerRef, identity.key, mountpoint);
        this.mounted.set(identity.key, entry);
      }
      entry.holders.add(holder);
      return mountpoint;
    });
  }

  /**
   * Mounts an opened layer ahead of its Prepare, holding no reference: the
   * Prepare then only takes one. A mount nobody takes within the unused period
   * is taken down again.
   */
  private async premount(layerRef: RemoteLayerRef): Promise<void> {
    const identity = layerIdentity(layerRef);
    await this.unmounting.withLock(identity.key, async () => {
      if (this.closing || this.mounted.has(identity.key) || this.poisoned.has(identity.key)) return;
      const entry = await this.mountLayer(layerRef, identity.key, join(this.options.mountRoot, identity.dirName));
      this.mounted.set(identity.key, entry);
      setTimeout(() => {
        this.dropUnusedMount(identity.key, entry).catch((err: unknown) => this.options.logger.warn({ err, layer: layerRef.digest }, 'taking down an unused mount failed'));
      }, UNUSED_LAYER_MS).unref();
    });
  }

  private async dropUnusedMount(key: string, entry: LayerMount): Promise<void> {
    await this.unmounting.withLock(key, async () => {
      if (this.mounted.get(key) !== entry || entry.holders.size > 0) return;
      await this.takeDown(key, entry);
    });
  }

  async release(layerRef: RemoteLayerRef, holder: string): Promise<void> {
    const { key } = layerIdentity(layerRef);
    await this.unmounting.withLock(key, () => this.dropHolder(key, holder));
  }

  async retainOnly(holders: ReadonlySet<string>): Promise<void> {
    for (const [key, entry] of [...this.mounted]) {
      for (const holder of [...entry.holders]) {
        if (holders.has(holder)) continue;
        this.options.logger.info({ layer: key, holder }, 'dropping the reference of a snapshot that no longer exists');
        await this.unmounting.withLock(key, () => this.dropHolder(key, holder));
      }
    }
  }

  /** Under the layer's lock. */
  private async dropHolder(key: string, holder: string): Promise<void> {
    const entry = this.mounted.get(key);
    if (!entry || !entry.holders.delete(holder) || entry.holders.size > 0) return;
    await this.takeDown(key, entry);
  }

  /** Unmounts a layer nothing holds any more and frees its memory; its chunks stay in the disk cache. Under the layer's lock. */
  private async takeDown(key: string, entry: LayerMount): Promise<void> {
    this.mounted.delete(key);
    await entry.mount.unmount();
    const open = this.layers.get(key);
    if (open) {
      this.layers.delete(key);
      await open.layer.close();
    }
  }

  async cleanupStale(): Promise<string[]> {
    await this.prepareMountRoot();
    return cleanupStaleMounts(this.options.mountRoot, this.options.logger);
  }

  /**
   * Makes the mount root root's alone, also when it already existed with a wider
   * mode (an operator's directory, or an older version's 0755): the mounts below
   * serve setuid binaries to whoever can reach them.
   */
  private prepareMountRoot(): Promise<void> {
    this.mountRootReady ??= (async () => {
      await mkdir(this.options.mountRoot, { recursive: true, mode: 0o700 });
      await chmod(this.options.mountRoot, 0o700);
    })().catch((err: unknown) => {
      this.mountRootReady = undefined;
      throw err;
    });
    return this.mountRootReady;
  }

  private async mountLayer(layerRef: RemoteLayerRef, key: string, mountpoint: string): Promise<LayerMount> {
    const open = await this.openForUse(layerRef);
    clearTimeout(open.unusedTimer);
    await this.prepareMountRoot();
    const mount = await this.mountFresh(open.layer, mountpoint);
    // A fresh mount is about to be read by a starting container: the idle period starts now.
    this.foreground.touch();
    if (this.options.backgroundFetch) {
      open.layer.startBackgroundFetch().then(
        (result) => this.recordBackgroundFetch(layerRef, key, open.layer, result),
        (err: unknown) => this.options.logger.warn({ err, layer: layerRef.digest }, 'background fetch stopped; chunks will be fetched on first read'),
      );
    }
    return { mount, holders: new Set() };
  }

  /**
   * Mounts the layer at its mountpoint, taking down first a mount left there
   * by a manager that died. That case is rare, so it is found out by the
   * mount's own check of the mount table (or by mkdir, which a dead mount
   * answers with ENOTCONN) rather than by reading the table once more for
   * every mount.
   */
  private async mountFresh(layer: RemoteLayer, mountpoint: string): Promise<MountedLayer> {
    const options = { logger: this.options.logger, fsname: 'lazysnap', subtype: 'estargz', observe: this.options.fuseObserver, answerTimeoutMs: this.options.fuseAnswerTimeoutMs };
    const mountThere = async (): Promise<MountedLayer> => {
      await mkdir(mountpoint, { recursive: true, mode: 0o700 });
      return mountLayer(layer, mountpoint, options);
    };
    try {
      return await mountThere();
    } catch (err) {
      if (!(err instanceof MountpointBusyError) && (err as NodeJS.ErrnoException).code !== 'ENOTCONN') throw err;
      await cleanupStaleMounts(mountpoint, this.options.logger);
      return mountThere();
    }
  }

  private recordBackgroundFetch(layerRef: RemoteLayerRef, key: string, layer: RemoteLayer, result: BackgroundFetchResult): void {
    this.options.logger.debug({ layer: layerRef.digest, tocDigest: layerRef.tocDigest, result }, 'background fetch finished');
    const poisoned = layer.poisoned;
    if (poisoned !== undefined) {
      // The layer logged it (ref, digest, expected and actual hash); count it once and keep it from new snapshots.
      if (!this.poisoned.has(key)) this.layersPoisoned.inc();
      this.poisoned.set(key, poisoned);
    } else if (layer.isBlobVerified) {
      this.blobVerified.add(key);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    // Opens and mounts ahead of their Prepares stop at their next layer; what they mounted meanwhile is unmounted below.
    await Promise.all([...this.openingAhead]);
    for (const [key, entry] of [...this.mounted.entries()]) {
      this.mounted.delete(key);
      await entry.mount.unmount().catch((err: unknown) => this.options.logger.error({ err, layer: key }, 'unmount at shutdown failed'));
    }
    for (const open of this.layers.values()) {
      clearTimeout(open.unusedTimer);
      await open.layer.close();
    }
    this.layers.clear();
  }

  /**
   * Opens a layer a Prepare (or a mount) needs. Layers opened ahead of their
   * Prepares must not keep it out of the TOC memory budget: when it does not
   * fit, those nobody holds are closed and the open is tried once more.
   */
  private async openForUse(layerRef: RemoteLayerRef): Promise<OpenLayer> {
    try {
      return await this.open(layerRef);
    } catch (err) {
      if (!(err instanceof TocMemoryBudgetError) || !(await this.closeUnheldLayers())) throw err;
      return this.open(layerRef);
    }
  }

  /** Closes the open layers no snapshot holds (unmounted, or mounted ahead with no reference); true if any was. */
  private async closeUnheldLayers(): Promise<boolean> {
    let closed = false;
    for (const [key, entry] of [...this.mounted]) {
      if (entry.holders.size > 0) continue;
      await this.dropUnusedMount(key, entry);
      closed = true;
    }
    for (const [key, open] of [...this.layers]) {
      if (this.mounted.has(key)) continue;
      clearTimeout(open.unusedTimer);
      this.layers.delete(key);
      await open.layer.close();
      closed = true;
    }
    return closed;
  }

  /** Passes a registry failure of a manifest lookup to onRegistryError, and rethrows whatever it is. */
  private reportRegistryError(err: unknown, ref: string, digest: string): never {
    if (err instanceof RegistryError) this.options.onRegistryError?.({ ref, digest, kind: 'manifest', message: err.message });
    throw err;
  }

  private fetcherFor(layerRef: RemoteLayerRef): BlobFetcher {
    const fetcher = registryFetcher(this.options.registry, layerRef.ref, layerRef.digest);
    const observer = this.options.fetchObserver;
    return observer ? observedFetcher(fetcher, layerRef.ref, layerRef.digest, observer) : fetcher;
  }

  /**
   * Every open layer (mounted or opened ahead of its Prepare) with how much of
   * it is local: what `lazysnap status` and the metrics show.
   */
  layerStatuses(): RemoteLayerStatus[] {
    const statuses: RemoteLayerStatus[] = [];
    for (const [key, open] of this.layers) {
      const { layer } = open;
      const mount = this.mounted.get(key);
      statuses.push({
        ref: layer.ref,
        digest: layer.digest,
        tocDigest: layer.tocDigest,
        ...(mount ? { mountpoint: mount.mount.mountpoint, references: mount.holders.size } : { references: 0 }),
        ...layer.progress(),
      });
    }
    return statuses;
  }

  private async open(layerRef: RemoteLayerRef): Promise<OpenLayer> {
    const { key } = layerIdentity(layerRef);
    const existing = this.layers.get(key);
    if (existing) return existing;
    return this.opening.do(key, async () => {
      const { logger } = this.options;
      try {
        const layer = await openRemoteLayer({
          ref: layerRef.ref,
          digest: layerRef.digest,
          ...(layerRef.size !== undefined ? { size: layerRef.size } : {}),
          expectedTocDigest: layerRef.tocDigest || undefined,
          allowUnverified: this.options.allowUnverified,
          fetcher: this.fetcherFor(layerRef),
          cache: this.options.cache,
          tocCacheDir: this.options.tocCacheDir,
          fetchTimeoutMs: this.options.fetchTimeoutMs,
          backgroundFetchConcurrency: this.options.backgroundFetchConcurrency,
          blobVerified: this.blobVerified.has(key),
          tocBudget: this.tocBudget,
          tocParser: this.options.tocParser,
          foregroundActivity: this.foreground,
          backgroundBandwidth: this.backgroundBandwidth,
          logger: logger.child({ layer: layerRef.digest, tocDigest: layerRef.tocDigest }),
        });
        if (this.options.prefetch) {
          layer.prefetch().catch((err: unknown) => logger.warn({ err, layer: layerRef.digest }, 'prefetch failed; files will be fetched on first read'));
        }
        const open: OpenLayer = { layer };
        open.unusedTimer = setTimeout(() => {
          if (this.mounted.has(key) || this.layers.get(key) !== open) return;
          this.layers.delete(key);
          layer.close().catch((err: unknown) => logger.warn({ err, layer: layerRef.digest }, 'closing an unused layer failed'));
        }, UNUSED_LAYER_MS);
        open.unusedTimer.unref();
        this.layers.set(key, open);
        this.layerOpens.inc({ outcome: 'ok' });
        return open;
      } catch (err) {
        this.layerOpens.inc({ outcome: 'error' });
        throw err;
      }
    });
  }
}
