/**
 * Applies downloaded layers onto snapshots in order, as containerd's
 * unpacker does: Prepare a unique key on the parent chain, apply the blob
 * with containerd's diff service, check the diffID, Commit as the chainID.
 */
import { status } from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { isGrpcCode } from '../containerd/connection.js';
import type { DiffService } from '../containerd/diff.js';
import type { SnapshotsClient } from '../containerd/snapshots-client.js';
import type { Descriptor } from '../containerd/types.js';
import { PullError } from './errors.js';
import type { ProgressSink } from './progress.js';

export interface UnpackInput {
  ref: string;
  layers: ReadonlyArray<{ descriptor: Descriptor; diffId: string; chainId: string; parent: string }>;
  snapshots: SnapshotsClient;
  diff: DiffService;
  progress: ProgressSink;
}

export async function unpackLayers(input: UnpackInput): Promise<void> {
  for (const layer of input.layers) {
    input.progress.layer(layer.descriptor.digest, 'applying');
    await unpackOne(input, layer);
    input.progress.layer(layer.descriptor.digest, 'done');
  }
}

async function unpackOne(input: UnpackInput, layer: UnpackInput['layers'][number]): Promise<void> {
  const { snapshots, ref } = input;
  const key = `extract-${randomBytes(8).toString('hex')} ${layer.chainId}`;
  let mounts;
  try {
    mounts = await snapshots.prepare(key, layer.parent);
  } catch (err) {
    if (isGrpcCode(err, status.ALREADY_EXISTS)) return;
    throw new PullError(`prepare snapshot: ${(err as Error).message}`, ref, layer.descriptor.digest, { cause: err });
  }
  let committed = false;
  try {
    const applied = await input.diff.apply(layer.descriptor, mounts);
    if (applied.digest !== layer.diffId) {
      throw new PullError(`applied layer has diffID ${applied.digest}, the image config says ${layer.diffId}`, ref, layer.descriptor.digest);
    }
    try {
      await snapshots.commit(layer.chainId, key);
      committed = true;
    } catch (err) {
      // A concurrent pull unpacked the same chain first.
      if (!isGrpcCode(err, status.ALREADY_EXISTS)) throw err;
    }
  } finally {
    if (!committed) {
      await snapshots.removeIfExists(key);
    }
  }
}
