/**
 * What `lazysnap status` shows, as the admin endpoint serves it (JSON). Only
 * types and pure helpers here: the status command imports this file, and
 * must not pay for lmdb, FUSE or prom-client.
 */
import type { BackgroundFetchState } from '../layer/index.js';
import type { RegistryErrorsReport } from './recent-errors.js';

export interface LayerStatus {
  ref: string;
  digest: string;
  tocDigest: string;
  /** Blob size, when known. */
  size?: number;
  /** Compressed chunk bytes of the layer (blob minus TOC and footer). */
  chunkBytes: number;
  /** Of those, in the chunk cache now. */
  cachedBytes: number;
  /** cachedBytes / chunkBytes, 0-100, one decimal. */
  cachedPercent: number;
  /** Blob bytes received from the registry for this layer since it was opened. */
  fetchedBytes: number;
  backgroundFetch: BackgroundFetchState;
  /** Absent while the layer is open but not mounted. */
  mountpoint?: string;
  /** Snapshots holding the mount. */
  references: number;
}

export interface CacheTierStatus {
  bytes: number;
  entries: number;
  /** Configured bound (0: tier off). */
  limitBytes: number;
  hits: number;
}

export interface DaemonStatus {
  version: string;
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  address: string;
  root: string;
  config: string;
  snapshots: { active: number; committed: number; view: number; remote: number };
  remote: {
    enabled: boolean;
    layers: LayerStatus[];
    /** Why the layers could not be listed (the FUSE manager is away). */
    error?: string;
  };
  /** FUSE mounts the daemon serves (one per mounted layer). */
  mounts: Array<{ mountpoint: string; digest: string; references: number }>;
  caches: {
    memory: CacheTierStatus;
    disk: CacheTierStatus;
    /** Lookups neither tier had: fetched from the registry. */
    misses: number;
    /** (memory + disk hits) / all lookups, 0-1; null before the first lookup. */
    hitRatio: number | null;
    toc: { files: number; bytes: number };
  };
  registryErrors: RegistryErrorsReport;
  /** The process serving the FUSE mounts, when it is not the daemon itself. */
  fuseManager?: FuseManagerStatus;
}

export interface FuseManagerStatus {
  /** The daemon has a connection to it right now. */
  connected: boolean;
  pid?: number;
  version?: string;
  startedAt?: string;
  socket: string;
  /** FUSE mounts it serves. */
  mounts?: number;
  /** Times the daemon found a new manager instance after losing one (its mounts were made again). */
  restarts: number;
  /** Why it cannot be reached, when it cannot. */
  error?: string;
}

export function percentOf(part: number, whole: number): number {
  if (whole <= 0) return 100;
  return Math.floor((part / whole) * 1000) / 10;
}
