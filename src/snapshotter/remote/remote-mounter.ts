import type { RemoteLayerRef } from '../metadata-store.js';
import type { RemoteRequest } from './remote-request.js';

/**
 * What the snapshotter needs to serve layers remotely. The snapshotter
 * owns metadata and snapshot directories; the mounter owns registries,
 * TOCs, caches and FUSE. Each layer is mounted once, wherever the mounter
 * likes, and shared by every snapshot of that layer (however many
 * namespaces or racing pulls prepared one): snapshots hold references.
 */
/** A layer that will be downloaded instead of served lazily, and why (for the operator's log). */
export interface NotRemote {
  notRemote: string;
}

/** An image whose eStargz layers may be opened ahead of their Prepares. */
export interface ImageToOpen {
  /** The image reference, as the Prepares' labels will give it. */
  ref: string;
  /** The manifest digest, as the Prepares' labels will give it. */
  manifestDigest: string;
}

export interface RemoteMounter {
  /**
   * Starts opening (and mounting) every eStargz layer of the image in the
   * background, as the image's first Prepare would: a pull that knows the
   * image before it sends that Prepare (ours) calls it as soon as it has the
   * manifest. Best effort and idempotent: failures are left to the Prepares.
   */
  openImage(image: ImageToOpen): void;
  /**
   * Whether the requested layer can be served lazily, with a verified TOC
   * digest; NotRemote means "download it" and says why. Concurrent calls for
   * one layer share one resolution.
   */
  decide(request: RemoteRequest): Promise<RemoteLayerRef | NotRemote>;
  /**
   * Takes a reference, named by holder (a snapshot id), on the layer's
   * read-only mount, mounting it on first use; returns its path. The same
   * holder taking it again is no second reference: a restarted daemon
   * acquires its snapshots' layers again from a mounter that may have kept
   * them (the FUSE manager).
   */
  acquire(layer: RemoteLayerRef, holder: string): Promise<string>;
  /** Drops holder's reference; the last one unmounts. */
  release(layer: RemoteLayerRef, holder: string): Promise<void>;
  /**
   * Called once after a restart has acquired every remote snapshot again:
   * references of any other holder (snapshots removed while no daemon was
   * there to release them) are dropped.
   */
  retainOnly(holders: ReadonlySet<string>): Promise<void>;
  /** Removes FUSE mounts a killed process left behind. */
  cleanupStale(): Promise<string[]>;
  close(): Promise<void>;
}
