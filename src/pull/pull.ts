/**
 * `lazysnap pull`: an image pull through containerd's API. Metadata
 * (index, manifest, config) goes into containerd's content store; with
 * remoteSnapshot, layers the snapshotter can serve lazily are skipped; the
 * rest are downloaded and unpacked; the image record is written last, all
 * under one lease so containerd's garbage collector keeps what we made.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ContentStore } from '../containerd/content.js';
import type { ContainerdConnection } from '../containerd/connection.js';
import { DiffService } from '../containerd/diff.js';
import { ImageStore } from '../containerd/images.js';
import { GC_REF_CONTENT_PREFIX, GC_REF_SNAPSHOT_PREFIX } from '../containerd/labels.js';
import { LeaseManager } from '../containerd/leases.js';
import { SnapshotsClient } from '../containerd/snapshots-client.js';
import type { Descriptor } from '../containerd/types.js';
import type { RegistryClient } from '../registry/index.js';
import { SingleFlight } from '../sync/index.js';
import { chainIds } from './chain-id.js';
import { PullError } from './errors.js';
import { fetchLayers } from './fetch-layers.js';
import { assertImagePlatform } from './image-platform.js';
import type { ProgressSink } from './progress.js';
import { filterRemoteLayers, type LayerOutcome } from './remote-filter.js';
import { unpackLayers } from './unpack.js';

export interface PullOptions {
  ref: string;
  remoteSnapshot: boolean;
  snapshotter: string;
  platform?: string;
  /** Parallel layer downloads. */
  concurrency?: number;
}

export interface PullDeps {
  registry: RegistryClient;
  connection: ContainerdConnection;
  progress: ProgressSink;
  logger: Logger;
  /** Shared by pulls in one process so a layer is fetched once. */
  flights?: SingleFlight<number>;
  /** Shared by pulls in one process so each layer's remote check runs once. */
  remoteFlights?: SingleFlight<LayerOutcome | 'missing'>;
  /**
   * Told the image (ref and manifest digest, as the remote Prepares will
   * name them) as soon as it is resolved, before the config is fetched: a
   * snapshotter in this process starts opening its layers then.
   */
  onImageResolved?: (image: { ref: string; manifestDigest: string }) => void;
}

export interface PulledLayer {
  digest: string;
  chainId: string;
  outcome: LayerOutcome;
}

export interface PullResult {
  name: string;
  target: Descriptor;
  layers: PulledLayer[];
  bytesDownloaded: number;
}

const LEASE_EXPIRY_MS = 24 * 60 * 60 * 1000;

export async function pullImage(options: PullOptions, deps: PullDeps): Promise<PullResult> {
  const { registry, connection, progress, logger } = deps;
  const started = Date.now();
  const phase = (name: string) => logger.debug({ ref: options.ref, phase: name, ms: Date.now() - started }, 'pull phase done');
  // The lease is asked for while the registry resolves the image (the CLI
  // checked that containerd answers before this); nothing is written to
  // containerd before both are done.
  const content = new ContentStore(connection);
  const leases = new LeaseManager(connection);
  const leaseId = `lazysnap-pull-${randomBytes(8).toString('hex')}`;
  const leaseCreated = leases.create(leaseId, LEASE_EXPIRY_MS);
  let metadataWritten: Promise<unknown> | undefined;
  try {
    const [resolved] = await Promise.all([registry.resolve(options.ref, options.platform ? { platform: options.platform } : {}), leaseCreated]);
    connection.lease = leaseId;
    phase('lease+resolve');
    // containerd names the image by the normalized reference the user gave (tag or digest).
    const name = registry.parse(options.ref).toString();
    const refString = name;
    if (options.remoteSnapshot) deps.onImageResolved?.({ ref: refString, manifestDigest: resolved.descriptor.digest });
    const config = await registry.getConfig(resolved.ref, resolved.manifest);
    assertImagePlatform({ ref: refString, digest: resolved.descriptor.digest, wanted: resolved.platform, config: config.config });
    const diffIds = config.config.rootfs?.diff_ids ?? [];
    const layers = resolved.manifest.layers as Descriptor[];
    if (diffIds.length !== layers.length) {
      throw new PullError(`manifest has ${layers.length} layers but the config lists ${diffIds.length} diff_ids`, refString);
    }
    const chains = chainIds(diffIds);
    phase('config');

    // Index, manifest and config go into the content store while the layers
    // are set up: they depend on nothing the layers decide, and the image
    // record that makes them reachable is written only after both.
    const flights = deps.flights ?? new SingleFlight<number>();
    metadataWritten = flights.do(`metadata|${connection.namespace}|${resolved.descriptor.digest}|${options.snapshotter}`, async () => {
      await writeMetadata(content, resolved, config, layers, options.snapshotter, chains[chains.length - 1]);
      return 0;
    });
    // Awaited below; a failure meanwhile must not count as unhandled.
    metadataWritten.catch(() => {});

    const snapshots = new SnapshotsClient({ connection, snapshotter: options.snapshotter });
    const outcomes: LayerOutcome[] = layers.map(() => 'download');
    let firstDownload = 0;
    if (options.remoteSnapshot) {
      firstDownload = await filterRemoteLayers({
        ref: refString,
        layers,
        chainIds: chains,
        snapshots,
        ...(deps.remoteFlights ? { flights: deps.remoteFlights } : {}),
        flightScope: `${connection.namespace}|${options.snapshotter}`,
        manifestDigest: resolved.descriptor.digest,
        onLayer: (i, outcome) => {
          outcomes[i] = outcome;
          progress.layer((layers[i] as Descriptor).digest, outcome === 'remote' ? 'remote' : 'exists');
        },
      });
      logger.debug({ ref: refString, remote: firstDownload, total: layers.length }, 'remote snapshot filter done');
      phase('remote-filter');
    }
    // Without the filter, layers whose chain is already unpacked are skipped as containerd does.
    const toApply: Array<{ descriptor: Descriptor; diffId: string; chainId: string; parent: string }> = [];
    for (let i = firstDownload; i < layers.length; i++) {
      const chainId = chains[i] as string;
      if (!options.remoteSnapshot && (await snapshots.exists(chainId)) && toApply.length === 0) {
        outcomes[i] = 'exists';
        progress.layer((layers[i] as Descriptor).digest, 'exists');
        continue;
      }
      toApply.push({ descriptor: layers[i] as Descriptor, diffId: diffIds[i] as string, chainId, parent: i === 0 ? '' : (chains[i - 1] as string) });
    }
    const bytesDownloaded = await fetchLayers({
      ref: refString,
      layers: toApply,
      registry,
      content,
      progress,
      concurrency: options.concurrency ?? 3,
      flights,
    });
    phase('fetch');
    await unpackLayers({ ref: refString, layers: toApply, snapshots, diff: new DiffService(connection), progress });
    phase('unpack');

    await metadataWritten;
    phase('metadata');
    const images = new ImageStore(connection);
    await images.createOrUpdate({ name, labels: {}, target: resolved.root as Descriptor });
    phase('image');
    progress.finish();
    return {
      name,
      target: resolved.root as Descriptor,
      layers: layers.map((l, i) => ({ digest: l.digest, chainId: chains[i] as string, outcome: outcomes[i] as LayerOutcome })),
      bytesDownloaded,
    };
  } finally {
    // Nothing may still be writing under the lease when it goes.
    await metadataWritten?.catch(() => {});
    connection.lease = undefined;
    if (await leaseCreated.then(() => true, () => false)) {
      await leases.delete(leaseId).catch((err: unknown) => logger.warn({ err, lease: leaseId }, 'failed to delete pull lease; it expires by itself'));
    }
  }
}

type Resolved = Awaited<ReturnType<RegistryClient['resolve']>>;
type FetchedConfig = Awaited<ReturnType<RegistryClient['getConfig']>>;

/**
 * Index, manifest and config with the garbage-collection labels containerd
 * itself writes: parents reference children, the config references the
 * image's top snapshot, so the image record keeps everything alive.
 */
async function writeMetadata(content: ContentStore, resolved: Resolved, config: FetchedConfig, layers: Descriptor[], snapshotter: string, topChainId: string | undefined): Promise<void> {
  const configLabels: Record<string, string> = {};
  if (topChainId) configLabels[`${GC_REF_SNAPSHOT_PREFIX}${snapshotter}`] = topChainId;
  await writeBlob(content, 'config', config.descriptor as Descriptor, config.raw, configLabels);

  const manifestLabels: Record<string, string> = { [`${GC_REF_CONTENT_PREFIX}.config`]: config.descriptor.digest };
  layers.forEach((l, i) => {
    manifestLabels[`${GC_REF_CONTENT_PREFIX}.l.${i}`] = l.digest;
  });
  await writeBlob(content, 'manifest', resolved.descriptor as Descriptor, resolved.raw, manifestLabels);

  if (resolved.index) {
    const indexLabels: Record<string, string> = {};
    resolved.index.index.manifests.forEach((m, i) => {
      indexLabels[`${GC_REF_CONTENT_PREFIX}.m.${i}`] = m.digest;
    });
    await writeBlob(content, 'index', resolved.index.descriptor as Descriptor, resolved.index.raw, indexLabels);
  }
}

async function writeBlob(content: ContentStore, kind: string, desc: Descriptor, raw: Buffer, labels: Record<string, string>): Promise<void> {
  const wrote = await content.write(`${kind}-${desc.digest}`, desc, async function* (offset) {
    yield raw.subarray(offset);
  }, { labels });
  if (wrote || Object.keys(labels).length === 0) return;
  // Already there (an earlier pull): only touch it when a label is missing, each update is a write transaction.
  const existing = (await content.info(desc.digest))?.labels ?? {};
  if (Object.entries(labels).some(([k, v]) => existing[k] !== v)) await content.updateLabels(desc.digest, labels);
}
