/**
 * What a remote layer is, for everything shared between images: open layers,
 * mounts, single flights, mountpoint paths, restore. A blob digest is only a
 * name until the whole blob has been hashed; what opening a layer verified is
 * its TOC against the TOC digest of the manifest it came from. So a layer is
 * known by its blob digest AND its TOC digest: another registry serving its own
 * blob (with a TOC digest valid for its own TOC) under a victim's blob digest
 * gets a layer of its own, never the victim's mount, nor the victim its.
 *
 * An unverified layer (allow_unverified, no TOC digest) has vouched for nothing:
 * it is known by blob digest and the image reference it was pulled through, and
 * shares with no verified layer nor with an unverified one of another image.
 */
import { createHash } from 'node:crypto';
import { parseChunkDigest } from '../../layer/index.js';
import type { RemoteLayerRef } from '../metadata-store.js';

export interface LayerIdentity {
  /** Key of the maps and flights of the mounter. */
  key: string;
  /** Name of the layer's mountpoint directory (safe as a single path component). */
  dirName: string;
  verified: boolean;
}

/** A layer record whose digests are not digests: its names cannot be trusted as keys or paths. */
export class InvalidRemoteLayerError extends Error {
  constructor(message: string, readonly layer: RemoteLayerRef) {
    super(`${message} (${layer.ref}@${layer.digest})`);
    this.name = 'InvalidRemoteLayerError';
  }
}

function digestPart(digest: string, what: string, layer: RemoteLayerRef): string {
  const parsed = parseChunkDigest(digest);
  if (parsed === undefined) throw new InvalidRemoteLayerError(`${what} ${JSON.stringify(digest)} is not a digest`, layer);
  return parsed.algorithm === 'sha256' ? parsed.hex : `${parsed.algorithm}-${parsed.hex}`;
}

export function layerIdentity(layer: RemoteLayerRef): LayerIdentity {
  const blob = digestPart(layer.digest, 'layer digest', layer);
  if (layer.tocDigest !== '') {
    const toc = digestPart(layer.tocDigest, 'TOC digest', layer);
    return { key: `${layer.digest} toc=${layer.tocDigest}`, dirName: `${blob}-toc-${toc}`, verified: true };
  }
  const refHash = createHash('sha256').update(layer.ref).digest('hex').slice(0, 32);
  return { key: `${layer.digest} unverified ref=${layer.ref}`, dirName: `${blob}-unverified-${refHash}`, verified: false };
}
