/**
 * Reads, from the labels of a Prepare, whether the caller asks for a remote
 * snapshot and of which layer. Three dialects say the same thing:
 *
 *  - remote-snapshot protocol (our pull client, the original proposal):
 *    remote_snapshot/ref + remote_snapshot/digest; we label the active
 *    snapshot and the client commits it;
 *  - target-ref protocol (containerd's unpacker, CRI, nerdctl):
 *    snapshot.ref = chainID + cri.image-ref + cri.layer-digest; we commit it
 *    ourselves under the chainID and answer AlreadyExists;
 *  - stargz-snapshotter's labels (ctr-remote images rpull): snapshot.ref +
 *    remote/stargz.reference + remote/stargz.digest, like target-ref.
 *
 * A plain `ctr images pull` also sends snapshot.ref, but no image ref and
 * layer digest: that is an ordinary unpack, not a remote request.
 */
import {
  CRI_IMAGE_REF,
  CRI_LAYER_DIGEST,
  CRI_MANIFEST_DIGEST,
  REMOTE_SNAPSHOT_DIGEST,
  REMOTE_SNAPSHOT_REF,
  STARGZ_DIGEST,
  STARGZ_REFERENCE,
  STARGZ_TOC_DIGEST,
  TARGET_SNAPSHOT_REF,
} from '../../containerd/labels.js';
import type { Labels } from '../types.js';

export type RemoteProtocol = 'remote-snapshot' | 'target-ref';

export interface RemoteRequest {
  protocol: RemoteProtocol;
  /** Image reference the layer belongs to. */
  ref: string;
  layerDigest: string;
  /** From the layer's annotation, when the caller passed it. */
  tocDigest?: string;
  /** target-ref: the name (chainID) to commit under. */
  target?: string;
  manifestDigest?: string;
}

export function parseRemoteRequest(labels: Labels): RemoteRequest | undefined {
  const tocDigest = labels[STARGZ_TOC_DIGEST];
  const common = tocDigest ? { tocDigest } : {};
  const remoteRef = labels[REMOTE_SNAPSHOT_REF];
  const remoteDigest = labels[REMOTE_SNAPSHOT_DIGEST];
  if (remoteRef && remoteDigest) return { protocol: 'remote-snapshot', ref: remoteRef, layerDigest: remoteDigest, ...common };

  const target = labels[TARGET_SNAPSHOT_REF];
  if (!target) return undefined;
  const ref = labels[CRI_IMAGE_REF] ?? labels[STARGZ_REFERENCE];
  const layerDigest = labels[CRI_LAYER_DIGEST] ?? labels[STARGZ_DIGEST];
  if (!ref || !layerDigest) return undefined;
  const manifestDigest = labels[CRI_MANIFEST_DIGEST];
  return { protocol: 'target-ref', ref, layerDigest, target, ...common, ...(manifestDigest ? { manifestDigest } : {}) };
}
