import type { RemoteLayerRef } from '../metadata-store.js';
import type { RemoteRequest } from './remote-request.js';

/**
 * What the snapshotter needs to serve layers remotely. The snapshotter
 * owns metadata and directories; the mounter owns registries, TOCs, caches
 * and FUSE. Keeping this seam small lets the snapshotter be tested with a
 * fake and the mounter be replaced.
 */
export interface RemoteMounter {
  /**
   * Whether the requested layer can be served lazily, with a verified TOC
   * digest. undefined means "download it". Concurrent calls for one layer
   * share one resolution.
   */
  resolve(request: RemoteRequest): Promise<RemoteLayerRef | undefined>;
  /** Mounts the layer read-only at mountpoint (an empty directory). */
  mount(layer: RemoteLayerRef, mountpoint: string): Promise<void>;
  /** Unmounts; a mountpoint that is not mounted is fine. */
  unmount(mountpoint: string): Promise<void>;
  /** Removes FUSE mounts a killed process left under dir. */
  cleanupStale(dir: string): Promise<string[]>;
  close(): Promise<void>;
}
