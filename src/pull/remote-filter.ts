/**
 * The remote-layer filter of a pull. From the bottom layer up, ask the
 * snapshotter whether it can serve each layer remotely; stop at the first
 * one it cannot. Those below are skipped from
 * the download, those from there up are downloaded and applied.
 */
import { status } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { isGrpcCode } from '../containerd/connection.js';
import {
  CRI_IMAGE_LAYERS, CRI_IMAGE_REF, CRI_LAYER_DIGEST, CRI_MANIFEST_DIGEST, REMOTE_SNAPSHOT, SNAPSHOT_LABEL_PREFIX, TARGET_SNAPSHOT_REF,
} from '../containerd/labels.js';
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
  /** The image manifest's digest, passed along so the snapshotter need not resolve the tag again. */
  manifestDigest?: string;
  onLayer?: (index: number, outcome: LayerOutcome) => void;
}

/** Returns the index of the first layer that must be downloaded (layers.length when none). */
export async function filterRemoteLayers(input: FilterInput): Promise<number> {
  const { layers, chainIds } = input;
  for (let i = 0; i < layers.length; i++) {
    const chainId = chainIds[i] as string;
    const decide = (): Promise<LayerOutcome | 'missing'> => prepareRemote(input, i);
    const outcome = input.flights ? await input.flights.do(`${input.flightScope ?? ''}|${chainId}`, decide) : await decide();
    if (outcome === 'missing') return i;
    input.onLayer?.(i, outcome);
  }
  return layers.length;
}

/**
 * One Prepare in the target-ref dialect, as containerd's own unpacker sends
 * it: a snapshotter that serves the layer remotely commits it under the
 * chain ID and answers AlreadyExists (so does containerd when the chain is
 * there already); one that cannot prepares an ordinary snapshot, which is
 * removed again. Two calls per remote layer, and the snapshotter commits in
 * the same step as it mounts.
 */
async function prepareRemote(input: FilterInput, i: number): Promise<LayerOutcome | 'missing'> {
  const { snapshots, ref, layers, chainIds } = input;
  const layer = layers[i] as Descriptor;
  const chainId = chainIds[i] as string;
  const parent = i === 0 ? '' : (chainIds[i - 1] as string);
  const key = `remote-${randomBytes(8).toString('hex')} ${chainId}`;
  const labels: Record<string, string> = {
    [TARGET_SNAPSHOT_REF]: chainId,
    [CRI_IMAGE_REF]: ref,
    [CRI_LAYER_DIGEST]: layer.digest,
    ...(input.manifestDigest ? { [CRI_MANIFEST_DIGEST]: input.manifestDigest } : {}),
    [CRI_IMAGE_LAYERS]: layers.map((l) => l.digest).join(','),
  };
  for (const [k, v] of Object.entries(layer.annotations ?? {})) {
    if (k.startsWith(SNAPSHOT_LABEL_PREFIX)) labels[k] = v;
  }
  try {
    await snapshots.prepare(key, parent, labels);
  } catch (err) {
    if (!isGrpcCode(err, status.ALREADY_EXISTS)) throw err;
    const info = await snapshots.statIfExists(chainId);
    if (info === undefined) return 'missing';
    return info.labels[REMOTE_SNAPSHOT] !== undefined ? 'remote' : 'exists';
  }
  // An ordinary active snapshot: the snapshotter cannot serve this layer remotely.
  await snapshots.removeIfExists(key);
  return 'missing';
}
