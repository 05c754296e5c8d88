/**
 * containerd's snapshotter semantics on local directories, shaped like
 * containerd's overlayfs snapshotter. Every operation follows one pattern:
 * validate, take the per-key locks, do slow file-system work outside the
 * store, then one short metadata transaction. Directories are created in a
 * staging area and renamed into place before the transaction commits, and
 * deleted only after it commits, so a crash can leave an orphan directory
 * (which Cleanup removes) but never metadata without its directory.
 */
import { chown, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { KeyedMutex } from '../sync/index.js';
import { diskUsage } from './disk-usage.js';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from './errors.js';
import { parseFilters } from './filters.js';
import { validateLabels } from './labels.js';
import type { MetadataStore } from './metadata-store.js';
import { buildMounts, type OverlayFeatures, type SnapshotLayout } from './mounts.js';
import { Kind, type Labels, type Mount, type SnapshotInfo, type Usage } from './types.js';

export interface SnapshotterOptions {
  root: string;
  store: MetadataStore;
  logger: Logger;
  overlay: OverlayFeatures;
}

export class Snapshotter implements SnapshotLayout {
  private readonly root: string;
  private readonly store: MetadataStore;
  private readonly logger: Logger;
  private readonly overlay: OverlayFeatures;
  private readonly locks = new KeyedMutex();
  /** Ids whose directory is in place but whose metadata may not be yet: Cleanup must not touch them. */
  private readonly inFlight = new Set<number>();
  private nextId: number;

  private constructor(options: SnapshotterOptions, nextId: number) {
    this.root = options.root;
    this.store = options.store;
    this.logger = options.logger;
    this.overlay = options.overlay;
    this.nextId = nextId;
  }

  /** Prepares the directory layout and forgets staging leftovers of an earlier run. */
  static async open(options: SnapshotterOptions): Promise<Snapshotter> {
    const { root, store } = options;
    await mkdir(join(root, 'snapshots'), { recursive: true, mode: 0o700 });
    await rm(join(root, 'staging'), { recursive: true, force: true });
    await mkdir(join(root, 'staging'), { recursive: true, mode: 0o700 });
    // Ids must never be reused, also for orphan directories a crash left behind.
    let maxId = store.maxId();
    for (const name of await readdir(join(root, 'snapshots'))) {
      const id = Number(name);
      if (Number.isSafeInteger(id)) maxId = Math.max(maxId, id);
    }
    return new Snapshotter(options, maxId + 1);
  }

  upperPath(id: number): string {
    return join(this.root, 'snapshots', String(id), 'fs');
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
    return buildMounts(snapshot.info.kind, snapshot.id, this.store.parentIds(key), this, this.overlay);
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
      const usage = await diskUsage(this.upperPath(active.id));
      this.store.commit(key, name, usage, labels);
    });
  }

  async remove(key: string): Promise<void> {
    requireKey(key);
    await this.locks.withLock(key, async () => {
      const removed = this.store.remove(key);
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
    return this.store.list(parseFilters(filters));
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
    validateLabels(labels, `snapshot ${key}`);
    return this.locks.withLock(key, async () => {
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
      }

      const staging = await this.stageDirectory(kind, parentId);
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
        try {
          const created = this.store.create(kind, key, parent, labels, id);
          return buildMounts(kind, created.id, this.store.parentIds(key), this, this.overlay);
        } catch (err) {
          await this.removeDirectory(path);
          throw err;
        }
      } finally {
        this.inFlight.delete(id);
      }
    });
  }

  /** A new snapshot directory in the staging area: fs/ (owned like the parent's) and, for active snapshots, work/. */
  private async stageDirectory(kind: Kind, parentId: number | undefined): Promise<string> {
    const staging = await mkdtemp(join(this.root, 'staging', 'new-'));
    try {
      await mkdir(join(staging, 'fs'), { mode: 0o755 });
      if (kind === Kind.Active) await mkdir(join(staging, 'work'), { mode: 0o711 });
      if (parentId !== undefined) {
        const parentStat = await stat(this.upperPath(parentId));
        await chown(join(staging, 'fs'), parentStat.uid, parentStat.gid);
      }
      return staging;
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
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

function requireKey(key: string, what = 'key'): void {
  if (typeof key !== 'string' || key === '') throw new InvalidArgumentError(`snapshot ${what} must not be empty`);
}
