/**
 * Gathers the daemon's state into a DaemonStatus when asked (on each status
 * call, never in the background): snapshot counts from the metadata store,
 * open layers from the mounter, cache figures, recent registry errors.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { REMOTE_SNAPSHOT } from '../containerd/labels.js';
import type { ChunkCacheStats } from '../layer/index.js';
import { Kind, type RemoteLayerStatus, type SnapshotInfo } from '../snapshotter/index.js';
import type { RegistryErrorsReport } from './recent-errors.js';
import { percentOf, type DaemonStatus, type FuseManagerStatus, type LayerStatus } from './status-model.js';

/** The remote side's figures, read in this process or asked of the FUSE manager. */
export interface RemoteStateReport {
  layers: RemoteLayerStatus[];
  chunkCache: ChunkCacheStats;
  registryErrors: RegistryErrorsReport;
}

export interface StatusSources {
  version: string;
  address: string;
  root: string;
  /** The config file read, or "defaults". */
  config: string;
  startedAt: Date;
  snapshots(): SnapshotInfo[];
  /** Absent when remote layers are off. */
  remote?: {
    state(): Promise<RemoteStateReport>;
    memoryLimitBytes: number;
    diskLimitBytes: number;
    tocCacheDir: string;
  };
  /** Present when a FUSE manager serves the mounts. */
  fuseManager?: () => Promise<FuseManagerStatus>;
}

const NO_REGISTRY_ERRORS: RegistryErrorsReport = { windowSeconds: 600, inWindow: 0, total: 0, recent: [] };

export class StatusCollector {
  constructor(private readonly sources: StatusSources) {}

  async collect(): Promise<DaemonStatus> {
    const { sources } = this;
    // The FUSE manager may be away (restarting): the rest of the status still answers, and says why layers are missing.
    let remoteError: string | undefined;
    const state = await sources.remote?.state().catch((err: unknown) => {
      remoteError = err instanceof Error ? err.message : String(err);
      return undefined;
    });
    const layers = (state?.layers ?? []).map(toLayerStatus);
    const fuseManager = await sources.fuseManager?.();
    return {
      version: sources.version,
      pid: process.pid,
      startedAt: sources.startedAt.toISOString(),
      uptimeSeconds: Math.round((Date.now() - sources.startedAt.getTime()) / 1000),
      address: sources.address,
      root: sources.root,
      config: sources.config,
      snapshots: countSnapshots(sources.snapshots()),
      remote: { enabled: sources.remote !== undefined, layers, ...(remoteError !== undefined ? { error: remoteError } : {}) },
      mounts: layers.flatMap((layer) => (layer.mountpoint !== undefined ? [{ mountpoint: layer.mountpoint, digest: layer.digest, references: layer.references }] : [])),
      caches: await this.caches(state?.chunkCache),
      registryErrors: state?.registryErrors ?? NO_REGISTRY_ERRORS,
      ...(fuseManager !== undefined ? { fuseManager } : {}),
    };
  }

  private async caches(stats: ChunkCacheStats | undefined): Promise<DaemonStatus['caches']> {
    const remote = this.sources.remote;
    if (remote === undefined || stats === undefined) {
      const off = { bytes: 0, entries: 0, limitBytes: 0, hits: 0 };
      return { memory: off, disk: off, misses: 0, hitRatio: null, toc: { files: 0, bytes: 0 } };
    }
    const lookups = stats.memoryHits + stats.diskHits + stats.misses;
    return {
      memory: { bytes: stats.memoryBytes, entries: stats.memoryEntries, limitBytes: remote.memoryLimitBytes, hits: stats.memoryHits },
      disk: { bytes: stats.disk?.bytes ?? 0, entries: stats.disk?.entries ?? 0, limitBytes: stats.disk ? remote.diskLimitBytes : 0, hits: stats.diskHits },
      misses: stats.misses,
      hitRatio: lookups === 0 ? null : (stats.memoryHits + stats.diskHits) / lookups,
      toc: await directoryUsage(remote.tocCacheDir),
    };
  }
}

function toLayerStatus(layer: RemoteLayerStatus): LayerStatus {
  return {
    ref: layer.ref,
    digest: layer.digest,
    tocDigest: layer.tocDigest,
    ...(layer.blobSize !== undefined ? { size: layer.blobSize } : {}),
    chunkBytes: layer.chunkBytes,
    cachedBytes: layer.cachedBytes,
    cachedPercent: percentOf(layer.cachedBytes, layer.chunkBytes),
    fetchedBytes: layer.fetchedBytes,
    backgroundFetch: layer.backgroundFetch,
    ...(layer.mountpoint !== undefined ? { mountpoint: layer.mountpoint } : {}),
    references: layer.references,
  };
}

function countSnapshots(infos: SnapshotInfo[]): DaemonStatus['snapshots'] {
  const counts = { active: 0, committed: 0, view: 0, remote: 0 };
  for (const info of infos) {
    if (info.kind === Kind.Active) counts.active++;
    else if (info.kind === Kind.Committed) counts.committed++;
    else if (info.kind === Kind.View) counts.view++;
    if (info.labels[REMOTE_SNAPSHOT] !== undefined) counts.remote++;
  }
  return counts;
}

/** Files and bytes under dir (the TOC cache: <algorithm>/<hex>, a few hundred files at most). */
async function directoryUsage(dir: string): Promise<{ files: number; bytes: number }> {
  const usage = { files: 0, bytes: 0 };
  let entries;
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return usage;
    throw err;
  }
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const info = await stat(join(entry.parentPath ?? entry.path, entry.name)).catch(() => undefined);
    if (info === undefined) continue; // removed while we walked: not there any more
    usage.files++;
    usage.bytes += info.size;
  }
  return usage;
}
