/**
 * containerd's snapshotter semantics on local directories, shaped like
 * containerd's overlayfs snapshotter. Every operation follows one pattern:
 * validate, take the per-key locks, do slow file-system work outside the
 * store, then one short metadata transaction. Directories are created in a
 * staging area and renamed into place before the transaction commits, and
 * deleted only after it commits, so a crash can leave an orphan directory
 * (which Cleanup removes) but never metadata without its directory.
 */
import { chmod, chown, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import { KeyedMutex } from '../sync/index.js';
import { diskUsage } from './disk-usage.js';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError } from './errors.js';
import { parseFilters, type Filter } from './filters.js';
import { validateLabels } from './labels.js';
import { MAX_KEY_BYTES, snapshotFieldAdaptor, type MetadataStore, type RemoteLayerRef, type StoredSnapshot } from './metadata-store.js';
import type { RemoteMounter } from './remote/remote-mounter.js';
import { parseRemoteRequest, type RemoteRequest } from './remote/remote-request.js';
import { REMOTE_SNAPSHOT, TARGET_SNAPSHOT_REF } from '../containerd/labels.js';
import { buildMounts, type OverlayFeatures, type SnapshotLayout } from './mounts.js';
import { Kind, type Labels, type Mount, type SnapshotInfo, type Usage } from './types.js';

export interface SnapshotterOptions {
  root: string;
  store: MetadataStore;
  logger: Logger;
  overlay: OverlayFeatures;
  /** Serves eStargz layers lazily; without it every layer is an ordinary one. */
  remote?: RemoteMounter;
}

export class Snapshotter implements SnapshotLayout {
  private readonly root: string;
  private readonly store: MetadataStore;
  private readonly logger: Logger;
  private readonly overlay: OverlayFeatures;
  private readonly remote: RemoteMounter | undefined;
  private readonly locks = new KeyedMutex();
  /** Where each remote snapshot's layer is mounted (shared by all snapshots of one layer), by id. */
  private readonly remotePaths = new Map<number, string>();
  /** Remote snapshots whose layer could not be mounted again at start, by id. */
  private readonly unavailable = new Map<number, { key: string; reason: string }>();
  /** Ids whose directory is in place but whose metadata may not be yet: Cleanup must not touch them. */
  private readonly inFlight = new Set<number>();
  private nextId: number;

  private constructor(options: SnapshotterOptions, nextId: number) {
    this.root = options.root;
    this.store = options.store;
    this.logger = options.logger;
    this.overlay = options.overlay;
    this.remote = options.remote;
    this.nextId = nextId;
  }

  /** Prepares the directory layout and forgets staging leftovers of an earlier run. */
  static async open(options: SnapshotterOptions): Promise<Snapshotter> {
    const { root, store } = options;
    await rm(join(root, 'staging'), { recursive: true, force: true });
    for (const dir of ['snapshots', 'staging']) await makePrivateDirectory(join(root, dir));
    // Ids must never be reused, also for orphan directories a crash left behind.
    let maxId = store.maxId();
    for (const name of await readdir(join(root, 'snapshots'))) {
      const id = Number(name);
      if (Number.isSafeInteger(id)) maxId = Math.max(maxId, id);
    }
    const snapshotter = new Snapshotter(options, maxId + 1);
    await snapshotter.restoreRemoteSnapshots();
    return snapshotter;
  }

  /**
   * Mounts every remote snapshot again (after a restart or a crash), before
   * the daemon accepts calls. A layer that cannot be mounted does not stop
   * the daemon: Mounts of the snapshots above it fail with a clear error.
   */
  private async restoreRemoteSnapshots(): Promise<void> {
    const remote = this.remote;
    if (remote) {
      const stale = await remote.cleanupStale();
      if (stale.length > 0) this.logger.info({ count: stale.length }, 'removed stale FUSE mounts of a previous run');
    }
    const remoteSnapshots = this.store.remoteSnapshots();
    if (remoteSnapshots.length === 0) {
      await remote?.retainOnly(new Set());
      return;
    }
    const started = Date.now();
    await Promise.all(
      remoteSnapshots.map(async (snapshot) => {
        const layer = snapshot.remote as RemoteLayerRef;
        if (!remote) {
          this.markUnavailable(snapshot, 'this daemon runs without remote layer support');
          return;
        }
        try {
          this.remotePaths.set(snapshot.id, await remote.acquire(layer, String(snapshot.id)));
        } catch (err) {
          this.markUnavailable(snapshot, (err as Error).message);
        }
      }),
    );
    await remote?.retainOnly(new Set(remoteSnapshots.map((snapshot) => String(snapshot.id))));
    this.logger.info({ count: remoteSnapshots.length, unavailable: this.unavailable.size, ms: Date.now() - started }, 'remote snapshots mounted again');
  }

  private markUnavailable(snapshot: StoredSnapshot, reason: string): void {
    this.unavailable.set(snapshot.id, { key: snapshot.info.name, reason });
    this.logger.error({ key: snapshot.info.name, layer: snapshot.remote?.digest, ref: snapshot.remote?.ref, reason }, 'remote snapshot could not be mounted again');
  }

  /** A snapshot's contents: its own fs/ directory, or for a remote snapshot its layer's FUSE mount. */
  upperPath(id: number): string {
    return this.remotePaths.get(id) ?? join(this.root, 'snapshots', String(id), 'fs');
  }

  workPath(id: number): string {
    return join(this.root, 'snapshots', String(id), 'work');
  }

  prepare(key: string, parent: string, labels: Labels = {}): Promise<Mount[]> {
    return this.createSnapshot(Kind.Active, key, parent, labels);
  }

  view(key: string, parent: string, labels: Labels = {}): Promise<Mount[]> {
    return this.createSnapshot(Kind.View, key, parent, labels);
  }

  async mounts(key: string): Promise<Mount[]> {
    requireKey(key);
    const snapshot = this.store.get(key);
    if (!snapshot) throw new NotFoundError(`snapshot ${key}: does not exist`);
    if (snapshot.info.kind !== Kind.Active && snapshot.info.kind !== Kind.View) {
      throw new FailedPreconditionError(`snapshot ${key}: is not active or view, it has no mounts`);
    }
    const parentIds = this.store.parentIds(key);
    this.checkAvailable(key, parentIds);
    return buildMounts(snapshot.info.kind, snapshot.id, parentIds, this, this.overlay);
  }

  private checkAvailable(key: string, ids: readonly number[]): void {
    for (const id of ids) {
      const problem = this.unavailable.get(id);
      if (problem) {
        throw new UnavailableError(`snapshot ${key}: remote layer of ${problem.key} is not available: ${problem.reason}`);
      }
    }
  }

  async commit(name: string, key: string, labels: Labels = {}): Promise<void> {
    requireKey(key);
    requireKey(name, 'name');
    validateLabels(labels, `commit ${key} as ${name}`);
    await this.locks.withLocks([key, name], async () => {
      // Same order of checks as containerd: the target name first.
      if (this.store.get(name)) throw new AlreadyExistsError(`committed snapshot ${name}: already exists`);
      const active = this.store.get(key);
      if (!active) throw new NotFoundError(`snapshot ${key}: does not exist`);
      if (active.info.kind !== Kind.Active) throw new FailedPreconditionError(`snapshot ${key}: is not active`);
      // A remote layer's directory is its FUSE mount: walking it would list the whole layer.
      const usage = active.remote ? { size: 0, inodes: 0 } : await diskUsage(this.upperPath(active.id));
      this.store.commit(key, name, usage, labels);
    });
  }

  async remove(key: string): Promise<void> {
    requireKey(key);
    await this.locks.withLock(key, async () => {
      const removed = this.store.remove(key);
      if (removed.remote) await this.releaseRemote(removed.id, removed.remote);
      this.unavailable.delete(removed.id);
      await this.removeDirectory(join(this.root, 'snapshots', String(removed.id)));
    });
  }

  async stat(key: string): Promise<SnapshotInfo> {
    requireKey(key);
    const snapshot = this.store.get(key);
    if (!snapshot) throw new NotFoundError(`snapshot ${key}: does not exist`);
    return snapshot.info;
  }

  async update(name: string, labels: Labels, paths: readonly string[]): Promise<SnapshotInfo> {
    requireKey(name);
    validateLabels(labels, `update ${name}`);
    return this.locks.withLock(name, async () => this.store.update(name, labels, paths));
  }

  async list(filters: readonly string[]): Promise<SnapshotInfo[]> {
    return selectMatching(this.store.infos(), parseFilters(filters));
  }

  async usage(key: string): Promise<Usage> {
    requireKey(key);
    const snapshot = this.store.get(key);
    if (!snapshot) throw new NotFoundError(`snapshot ${key}: does not exist`);
    if (snapshot.info.kind === Kind.Active) return diskUsage(this.upperPath(snapshot.id));
    return snapshot.usage;
  }

  /** Removes snapshot and staging directories the metadata does not know. */
  async cleanup(): Promise<string[]> {
    const known = this.store.ids();
    const removed: string[] = [];
    const snapshotsDir = join(this.root, 'snapshots');
    for (const name of await readdir(snapshotsDir)) {
      const id = Number(name);
      if (Number.isSafeInteger(id) && (known.has(id) || this.inFlight.has(id))) continue;
      const path = join(snapshotsDir, name);
      await this.removeDirectory(path);
      removed.push(path);
    }
    this.logger.info({ removed: removed.length }, 'cleanup removed orphan snapshot directories');
    return removed;
  }

  private async createSnapshot(kind: Kind, key: string, parent: string, labels: Labels): Promise<Mount[]> {
    requireKey(key);
    if (parent !== '') requireKey(parent, 'parent');
    validateLabels(labels, `snapshot ${key}`);
    const request = kind === Kind.Active && this.remote ? parseRemoteRequest(labels) : undefined;
    if (kind === Kind.Active && !this.remote && parseRemoteRequest(labels)) {
      this.logger.info({ key, reason: 'remote layers are off ([remote] enabled = false)' }, 'layer cannot be served remotely; it will be downloaded');
    }
    if (request?.target !== undefined && this.store.get(request.target)) {
      // target-ref protocol: the layer is already there; containerd finds it with a List.
      throw new AlreadyExistsError(`target snapshot ${request.target}: already exists`);
    }
    // Resolving a remote layer (registry round trips, TOC fetch) happens before any lock is taken.
    const remoteLayer = request ? await this.resolveRemote(key, request) : undefined;
    const target = request?.protocol === 'target-ref' ? request.target : undefined;
    const lockKeys = target !== undefined && remoteLayer ? [key, target] : [key];
    const created = await this.locks.withLocks(lockKeys, async () => {
      // Fail fast before touching the disk; the transaction checks again.
      if (this.store.get(key)) throw new AlreadyExistsError(`snapshot ${key}: already exists`);
      let parentId: number | undefined;
      if (parent !== '') {
        const parentSnapshot = this.store.get(parent);
        if (!parentSnapshot) throw new NotFoundError(`snapshot ${key}: parent ${parent} does not exist`);
        if (parentSnapshot.info.kind !== Kind.Committed) {
          throw new InvalidArgumentError(`snapshot ${key}: parent ${parent} is not a committed snapshot`);
        }
        parentId = parentSnapshot.id;
        // A child of a layer that could not be mounted again would mount an empty lowerdir.
        this.checkAvailable(key, [parentId, ...this.store.parentIds(parent)]);
      }

      // A layer about to be mounted remotely never uses its fs/ directory, so it is not given the
      // parent's owner up front: that needs a stat of the parent's upper directory, which for a remote
      // parent is a FUSE request to a manager busy opening this image's other layers (11-16 ms measured).
      const ownerFrom = remoteLayer ? undefined : parentId;
      const staging = await this.stageDirectory(kind, ownerFrom);
      const id = this.nextId++;
      const path = join(this.root, 'snapshots', String(id));
      this.inFlight.add(id);
      try {
        try {
          await rename(staging, path);
        } catch (err) {
          await rm(staging, { recursive: true, force: true });
          throw err;
        }
        const mounted = remoteLayer ? await this.mountRemote(key, remoteLayer, id) : false;
        try {
          // A remote layer that could not be mounted falls back to an ordinary snapshot: its fs/ now matters.
          if (remoteLayer && !mounted && parentId !== undefined) await this.ownLikeParent(join(path, 'fs'), parentId);
          if (mounted && remoteLayer) {
            const remoteLabels = { ...labels, [REMOTE_SNAPSHOT]: 'remote' };
            if (target === undefined) return { snapshot: this.store.create(kind, key, parent, remoteLabels, id, remoteLayer) };
            // target-ref: one transaction records the layer under its committed name with the label containerd's Walk looks for;
            // the loser of a race for the same layer gets AlreadyExists from it, and the winner's snapshot serves both.
            return { committedTarget: this.store.createCommittedRemote(target, parent, { ...remoteLabels, [TARGET_SNAPSHOT_REF]: target }, id, remoteLayer) };
          }
          return { snapshot: this.store.create(kind, key, parent, labels, id) };
        } catch (err) {
          if (mounted && remoteLayer) await this.releaseRemote(id, remoteLayer);
          await this.removeDirectory(path);
          throw err;
        }
      } finally {
        this.inFlight.delete(id);
      }
    });
    // target-ref: AlreadyExists tells containerd the layer needs no unpacking; it finds the committed snapshot by name.
    if (created.committedTarget) throw new AlreadyExistsError(`target snapshot ${created.committedTarget.info.name}: already exists (served remotely)`);
    return buildMounts(kind, created.snapshot.id, this.store.parentIds(key), this, this.overlay);
  }

  /**
   * A verified remote layer for the request, or undefined to fall back to an
   * ordinary snapshot. Every fallback is logged with its reason: an operator
   * asking "why was this layer downloaded?" finds the answer in one line.
   */
  private async resolveRemote(key: string, request: RemoteRequest): Promise<RemoteLayerRef | undefined> {
    try {
      const layer = await (this.remote as RemoteMounter).decide(request);
      if ('notRemote' in layer) {
        this.logger.info({ key, ref: request.ref, layer: request.layerDigest, reason: layer.notRemote }, 'layer cannot be served remotely; it will be downloaded');
        return undefined;
      }
      return layer;
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.logger.warn({ err, key, ref: request.ref, layer: request.layerDigest, reason }, 'remote layer check failed; the layer will be downloaded');
      return undefined;
    }
  }

  private async mountRemote(key: string, layer: RemoteLayerRef, id: number): Promise<boolean> {
    try {
      this.remotePaths.set(id, await (this.remote as RemoteMounter).acquire(layer, String(id)));
      return true;
    } catch (err) {
      this.logger.warn({ err, key, ref: layer.ref, layer: layer.digest }, 'mounting the remote layer failed; the layer will be downloaded');
      return false;
    }
  }

  /** Never throws: the metadata is already decided; a mount left behind is removed at the next start. */
  private async releaseRemote(id: number, layer: RemoteLayerRef): Promise<void> {
    if (!this.remotePaths.delete(id)) return;
    try {
      await this.remote?.release(layer, String(id));
    } catch (err) {
      this.logger.error({ err, layer: layer.digest }, 'failed to release remote layer mount');
    }
  }

  /**
   * A new snapshot directory in the staging area: fs/ (owned like the upper
   * directory of snapshot `ownerFrom`, when given) and, for active snapshots, work/.
   */
  private async stageDirectory(kind: Kind, ownerFrom: number | undefined): Promise<string> {
    const staging = await mkdtemp(join(this.root, 'staging', 'new-'));
    try {
      await mkdir(join(staging, 'fs'), { mode: 0o755 });
      if (kind === Kind.Active) await mkdir(join(staging, 'work'), { mode: 0o711 });
      if (ownerFrom !== undefined) await this.ownLikeParent(join(staging, 'fs'), ownerFrom);
      return staging;
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
  }

  /** Gives `dir` the owner of the parent's upper directory, as containerd's overlay snapshotter does. */
  private async ownLikeParent(dir: string, parentId: number): Promise<void> {
    const parentStat = await stat(this.upperPath(parentId));
    await chown(dir, parentStat.uid, parentStat.gid);
  }

  private async removeDirectory(path: string): Promise<void> {
    try {
      await rm(path, { recursive: true, force: true, maxRetries: 3 });
    } catch (err) {
      // The metadata is already gone; Cleanup will retry the directory.
      this.logger.warn({ err, path }, 'failed to remove snapshot directory');
    }
  }
}

/**
 * Snapshot directories hold image content, setuid binaries included: like
 * containerd's, they are the daemon user's alone, also when they existed
 * before with looser permissions.
 */
async function makePrivateDirectory(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  await chown(path, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
  await chmod(path, 0o700);
}

function requireKey(key: string, what = 'key'): void {
  if (typeof key !== 'string' || key === '') throw new InvalidArgumentError(`snapshot ${what} must not be empty`);
  const bytes = Buffer.byteLength(key);
  if (bytes > MAX_KEY_BYTES) {
    throw new InvalidArgumentError(`snapshot ${what} ${JSON.stringify(key.slice(0, 64))}... is ${bytes} bytes; the limit is ${MAX_KEY_BYTES} bytes`);
  }
}

/** How long List matches filters before it lets other calls run. */
const LIST_SLICE_MS = 5;

/**
 * The infos filter matches. Matching is linear in each name and label, but a
 * 32 KiB key against a large pattern still costs milliseconds, so the work is
 * cut into slices and other calls (and FUSE reads) are served in between.
 */
async function selectMatching(infos: SnapshotInfo[], filter: Filter): Promise<SnapshotInfo[]> {
  const out: SnapshotInfo[] = [];
  let sliceStart = performance.now();
  for (const info of infos) {
    if (filter.match(snapshotFieldAdaptor(info))) out.push(info);
    if (performance.now() - sliceStart > LIST_SLICE_MS) {
      await yieldToEventLoop();
      sliceStart = performance.now();
    }
  }
  return out;
}
