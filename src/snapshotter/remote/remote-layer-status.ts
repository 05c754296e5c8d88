import type { LayerProgress } from '../../layer/index.js';

/** One open remote layer as the daemon reports it (`lazysnap status`, metrics). */
export interface RemoteLayerStatus extends LayerProgress {
  /** Image reference the layer is fetched through. */
  ref: string;
  /** Blob digest. */
  digest: string;
  /** Verified TOC digest (empty for a layer served unverified). */
  tocDigest: string;
  /** Where the layer is mounted; absent for a layer opened ahead of its Prepare and not mounted yet. */
  mountpoint?: string;
  /** Snapshots holding the mount. */
  references: number;
}
