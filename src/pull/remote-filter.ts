/**
 * The layer filter of containerd's original remote-snapshot proposal. From
 * the bottom layer up, ask the snapshotter whether it can serve each layer
 * remotely; stop at the first one it cannot. Those below are skipped from
 * the download, those from there up are downloaded and applied.
 */
import { status } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { isGrpcCode } from '../containerd/connection.js';
import { REMOTE_SNAPSHOT, REMOTE_SNAPSHOT_DIGEST, REMOTE_SNAPSHOT_REF, SNAPSHOT_LABEL_PREFIX } from '../containerd/labels.js';
import type { SnapshotsClient } from '../containerd/snapshots-client.js';
import type { Descriptor } from '../containerd/types.js';
import type { SingleFlight } from '../sync/index.js';

export type LayerOutcome = 'remote' | 'exists' | 'download';

export interface FilterInput {
  ref: string;
  layers: readonly Descriptor[];
  chainIds: readonly string[];
  snapshots: SnapshotsClient;
  /**
   * Shared by the pulls of one process, keyed by snapshotter, namespace and
   * chain: racing pulls of one image ask the snapshotter once per layer and
   * all take that answer, instead of each preparing a snapshot that all but
   * one then throw away.
   */
  flights?: SingleFlight<LayerOutcome | 'missing'>;
  /** Distinguishes flights of different namespaces and snapshotters. */
  flightScope?: string;
  onLayer?: (index: number, outcome: LayerOutcome) => void;
}

/** Returns the index of the first layer that must be downloaded (layers.length when none). */
export async function filterRemoteLayers(input: FilterInput): Promise<number> {
  const { ref, layers, chainIds, snapshots } = input;
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i] as Descriptor;
    const chainId = chainIds[i] as string;
    const parent = i === 0 ? '' : (chainIds[i - 1] as string);
    const decide = async (): Promise<LayerOutcome | 'missing'> => {
      if (await snapshots.exists(chainId)) return 'exists';
      return (await prepareRemote(snapshots, ref, layer, chainId, parent)) ? 'remote' : 'missing';
    };
    const outcome = input.flights ? await input.flights.do(`${input.flightScope ?? ''}|${chainId}`, decide) : await decide();
    if (outcome === 'missing') return i;
    input.onLayer?.(i, outcome);
  }
  return layers.length;
}

/** Prepare + Stat; commits as chainId when the snapshotter marked it remote, else removes it. */
async function prepareRemote(snapshots: SnapshotsClient, ref: string, layer: Descriptor, chainId: string, parent: string): Promise<boolean> {
  const key = `remote-${randomBytes(8).toString('hex')} ${chainId}`;
  const labels: Record<string, string> = { [REMOTE_SNAPSHOT_REF]: ref, [REMOTE_SNAPSHOT_DIGEST]: layer.digest };
  for (const [k, v] of Object.entries(layer.annotations ?? {})) {
    if (k.startsWith(SNAPSHOT_LABEL_PREFIX)) labels[k] = v;
  }
  try {
    await snapshots.prepare(key, parent, labels);
  } catch (err) {
    // The chain appeared meanwhile (another pull), or the parent is gone: let the caller decide from Stat.
    if (isGrpcCode(err, status.ALREADY_EXISTS)) return snapshots.exists(chainId);
    throw err;
  }
  let committed = false;
  try {
    const info = await snapshots.stat(key);
    if (info.labels[REMOTE_SNAPSHOT] === undefined) return false;
    try {
      await snapshots.commit(chainId, key);
      committed = true;
    } catch (err) {
      // Another pull committed the same chain first: that is just as good.
      if (!isGrpcCode(err, status.ALREADY_EXISTS)) throw err;
    }
    return true;
  } finally {
    // A successful Commit consumed the key (one call less per layer); otherwise it must not linger.
    if (!committed) await snapshots.removeIfExists(key);
  }
}
