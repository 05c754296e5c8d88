/**
 * Durable snapshot metadata in LMDB. Every change is one synchronous LMDB
 * write transaction: it commits whole or not at all, so a crash leaves the
 * old or the new state. Transactions only read and write records; callers do
 * all file-system work before or after them, never inside.
 */
import { createHash } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { open, type Database, type RootDatabase } from 'lmdb';
import { AlreadyExistsError, FailedPreconditionError, InternalError, InvalidArgumentError, NotFoundError } from './errors.js';
import { Kind, kindName, type Labels, type SnapshotInfo, type Usage } from './types.js';
import { storedTimeToNanoseconds, WallClock } from './wall-clock.js';

const SCHEMA_VERSION = 1;

/** containerd's bolt store takes keys up to bbolt's MaxKeySize; so do we. */
export const MAX_KEY_BYTES = 32_768;

/**
 * LMDB refuses keys over 1978 bytes. Keys up to this size are LMDB keys
 * themselves; longer ones (and any that could be mistaken for a hashed one)
 * are stored under HASHED_KEY_PREFIX + their SHA-256, with the full key in
 * the record, checked on every read.
 */
const MAX_DIRECT_KEY_BYTES = 1024;
const HASHED_KEY_PREFIX = '\u0001sha256:';

/** What is stored per snapshot key. Labels are pairs so no key is special to the encoder. */
interface SnapshotRecord {
  /** The snapshot key; absent in records written before long keys, whose LMDB key is the snapshot key. */
  key?: string;
  id: number;
  kind: Kind;
  parent: string;
  labels: Array<[string, string]>;
  /** Nanoseconds since the epoch; a number (milliseconds) in records written before nanosecond times. */
  created: bigint | number;
  updated: bigint | number;
  size: number;
  inodes: number;
  /** Set when the snapshot's directory is a FUSE mount of a remote layer. */
  remote?: RemoteLayerRef;
}

/** Which remote layer a snapshot serves: enough to mount it again after a restart. */
export interface RemoteLayerRef {
  ref: string;
  digest: string;
  tocDigest: string;
  size?: number;
}

export interface StoredSnapshot {
  id: number;
  info: SnapshotInfo;
  usage: Usage;
  remote?: RemoteLayerRef;
}

/** Observes how long each write transaction held the store (seconds). */
export type LockHoldObserver = (operation: string, seconds: number) => void;

export class MetadataStore {
  private readonly env: RootDatabase;
  private readonly snapshots: Database<SnapshotRecord, string>;
  /** [parentId, childId] → child key; answers "has children?" with one range read. */
  private readonly children: Database<string, [number, number]>;
  private readonly clock = new WallClock();

  private constructor(env: RootDatabase, private readonly onLockHeld: LockHoldObserver) {
    this.env = env;
    this.snapshots = env.openDB<SnapshotRecord, string>({ name: 'snapshots' });
    this.children = env.openDB<string, [number, number]>({ name: 'children' });
  }

  static open(path: string, onLockHeld: LockHoldObserver = () => {}): MetadataStore {
    const env = open({ path, compression: false, maxDbs: 8 });
    const store = new MetadataStore(env, onLockHeld);
    store.checkSchema();
    return store;
  }

  async close(): Promise<void> {
    // lmdb-js 3.5 blocks for ever in close() when a synchronous transaction ran earlier in the same tick.
    await yieldToEventLoop();
    await this.env.close();
  }

  get(key: string): StoredSnapshot | undefined {
    const record = this.read(key);
    return record ? toStored(key, record) : undefined;
  }

  /** The record of key; a record stored under the same LMDB key for another key is an error, never a match. */
  private read(key: string): SnapshotRecord | undefined {
    const lmdbKey = storageKey(key);
    const record = this.snapshots.get(lmdbKey);
    if (record === undefined) return undefined;
    const recordKey = record.key ?? lmdbKey;
    if (recordKey !== key) {
      throw new InternalError(`snapshot ${abbreviate(key)}: its storage key ${lmdbKey} holds the record of snapshot ${abbreviate(recordKey)}`);
    }
    return record;
  }

  private put(key: string, record: SnapshotRecord): void {
    this.snapshots.put(storageKey(key), { ...record, key });
  }

  /** The ids of key's parent chain, nearest parent first. */
  parentIds(key: string): number[] {
    const ids: number[] = [];
    let record = this.read(key);
    const seen = new Set<string>([key]);
    while (record && record.parent !== '') {
      const parentKey = record.parent;
      if (seen.has(parentKey)) throw new InternalError(`snapshot ${key}: parent chain loops at ${parentKey}`);
      seen.add(parentKey);
      record = this.read(parentKey);
      if (!record) throw new NotFoundError(`snapshot ${key}: parent ${parentKey} does not exist`);
      ids.push(record.id);
    }
    return ids;
  }

  /** Snapshots whose directory is a remote layer mount (to mount again at start). */
  remoteSnapshots(): StoredSnapshot[] {
    const out: StoredSnapshot[] = [];
    for (const { key, value } of this.snapshots.getRange()) {
      if (value.remote) out.push(toStored(value.key ?? key, value));
    }
    return out;
  }

  /** Every snapshot id known to the store (for Cleanup). */
  ids(): Set<number> {
    const ids = new Set<number>();
    for (const { value } of this.snapshots.getRange()) ids.add(value.id);
    return ids;
  }

  maxId(): number {
    let max = 0;
    for (const { value } of this.snapshots.getRange()) max = Math.max(max, value.id);
    return max;
  }

  create(kind: Kind, key: string, parent: string, labels: Labels, id: number, remote?: RemoteLayerRef): StoredSnapshot {
    if (kind !== Kind.Active && kind !== Kind.View) {
      throw new InvalidArgumentError(`snapshot ${key}: kind ${kindName(kind)} invalid; only active or view can be created`);
    }
    return this.write('create', () => {
      if (this.read(key) !== undefined) throw new AlreadyExistsError(`snapshot ${key}: already exists`);
      return this.insert(key, kind, parent, labels, id, remote);
    });
  }

  /**
   * Records a remote layer straight as committed snapshot name, in one
   * transaction: what create() of an active snapshot followed by commit()
   * leaves, with one write transaction and no second trip through the locks
   * (target-ref Prepares are on the critical path of every lazy pull, one per
   * layer), and no moment in which the active snapshot exists alone.
   */
  createCommittedRemote(name: string, parent: string, labels: Labels, id: number, remote: RemoteLayerRef): StoredSnapshot {
    return this.write('create-committed', () => {
      if (this.read(name) !== undefined) throw new AlreadyExistsError(`committed snapshot ${name}: already exists`);
      return this.insert(name, Kind.Committed, parent, labels, id, remote);
    });
  }

  /** Turns active snapshot key into committed snapshot name. Labels are the active's plus extraLabels. */
  commit(key: string, name: string, usage: Usage, extraLabels: Labels): StoredSnapshot {
    return this.write('commit', () => {
      if (this.read(name) !== undefined) throw new AlreadyExistsError(`committed snapshot ${name}: already exists`);
      const active = this.read(key);
      if (!active) throw new NotFoundError(`snapshot ${key}: does not exist`);
      if (active.kind !== Kind.Active) throw new FailedPreconditionError(`snapshot ${key}: is not active`);
      const now = this.clock.now();
      const labels = { ...Object.fromEntries(active.labels), ...extraLabels };
      const record: SnapshotRecord = {
        ...active,
        kind: Kind.Committed,
        labels: storedLabels(labels),
        created: now,
        updated: now,
        size: usage.size,
        inodes: usage.inodes,
      };
      this.snapshots.remove(storageKey(key));
      this.put(name, record);
      if (active.parent !== '') {
        const parentRecord = this.read(active.parent);
        if (!parentRecord) throw new NotFoundError(`snapshot ${key}: parent ${active.parent} does not exist`);
        this.children.put([parentRecord.id, active.id], name);
      }
      return toStored(name, record);
    });
  }

  remove(key: string): StoredSnapshot {
    return this.write('remove', () => {
      const record = this.read(key);
      if (!record) throw new NotFoundError(`snapshot ${key}: does not exist`);
      for (const { value: child } of this.children.getRange({ start: [record.id], end: [record.id + 1], limit: 1 })) {
        throw new FailedPreconditionError(`snapshot ${key}: cannot remove snapshot with child ${child}`);
      }
      if (record.parent !== '') {
        const parentRecord = this.read(record.parent);
        if (parentRecord) this.children.remove([parentRecord.id, record.id]);
      }
      this.snapshots.remove(storageKey(key));
      return toStored(key, record);
    });
  }

  /**
   * containerd's Update: with no paths the labels are replaced; `labels`
   * replaces them; `labels.KEY` sets or (when absent in info) deletes one.
   * Every other path is immutable.
   */
  update(name: string, labels: Labels, paths: readonly string[]): SnapshotInfo {
    return this.write('update', () => {
      const record = this.read(name);
      if (!record) throw new NotFoundError(`snapshot ${name}: does not exist`);
      let updated = Object.fromEntries(record.labels) as Labels;
      if (paths.length === 0) {
        updated = { ...labels };
      } else {
        for (const path of paths) {
          if (path === 'labels') {
            updated = { ...labels };
          } else if (path.startsWith('labels.')) {
            const labelKey = path.slice('labels.'.length);
            updated[labelKey] = labels[labelKey] ?? '';
          } else {
            throw new InvalidArgumentError(`snapshot ${name}: cannot update ${JSON.stringify(path)} field`);
          }
        }
      }
      // A realtime clock stepped back must not make a snapshot updated before it was created.
      const created = storedTimeToNanoseconds(record.created);
      const now = this.clock.now();
      const next: SnapshotRecord = { ...record, labels: storedLabels(updated), updated: now > created ? now : created };
      this.put(name, next);
      return toStored(name, next).info;
    });
  }

  /** Every snapshot's info, read from one consistent LMDB snapshot. */
  infos(): SnapshotInfo[] {
    const out: SnapshotInfo[] = [];
    for (const { key, value } of this.snapshots.getRange()) out.push(toStored(value.key ?? key, value).info);
    return out;
  }

  /** Writes a new record for key on a committed parent (none: ''), with its child link. Inside a transaction; key must be free. */
  private insert(key: string, kind: Kind, parent: string, labels: Labels, id: number, remote: RemoteLayerRef | undefined): StoredSnapshot {
    let parentId = 0;
    if (parent !== '') {
      const parentRecord = this.read(parent);
      if (!parentRecord) throw new NotFoundError(`snapshot ${key}: parent ${parent} does not exist`);
      if (parentRecord.kind !== Kind.Committed) {
        throw new InvalidArgumentError(`snapshot ${key}: parent ${parent} is not a committed snapshot`);
      }
      parentId = parentRecord.id;
    }
    const now = this.clock.now();
    const record: SnapshotRecord = { key, id, kind, parent, labels: storedLabels(labels), created: now, updated: now, size: 0, inodes: 0, ...(remote ? { remote } : {}) };
    this.put(key, record);
    if (parent !== '') this.children.put([parentId, id], key);
    return toStored(key, record);
  }

  private write<T>(operation: string, body: () => T): T {
    const start = process.hrtime.bigint();
    try {
      return this.env.transactionSync(body);
    } finally {
      this.onLockHeld(operation, Number(process.hrtime.bigint() - start) / 1e9);
    }
  }

  private checkSchema(): void {
    const version = this.env.get('schema-version') as number | undefined;
    if (version === undefined) {
      this.env.transactionSync(() => this.env.put('schema-version', SCHEMA_VERSION));
    } else if (version !== SCHEMA_VERSION) {
      throw new InternalError(`metadata schema version ${version} is not supported (want ${SCHEMA_VERSION})`);
    }
  }
}

/** The LMDB key of snapshot key. */
function storageKey(key: string): string {
  if (Buffer.byteLength(key) <= MAX_DIRECT_KEY_BYTES && !key.startsWith(HASHED_KEY_PREFIX)) return key;
  return HASHED_KEY_PREFIX + createHash('sha256').update(key).digest('hex');
}

function abbreviate(key: string): string {
  return key.length > 80 ? `${key.slice(0, 80)}... (${Buffer.byteLength(key)} bytes)` : key;
}

/** As in containerd, a label with an empty value is not stored: setting "" deletes it. */
function storedLabels(labels: Labels): Array<[string, string]> {
  return Object.entries(labels).filter(([, value]) => value !== '');
}

function toStored(key: string, record: SnapshotRecord): StoredSnapshot {
  return {
    id: record.id,
    info: {
      name: key,
      parent: record.parent,
      kind: record.kind,
      created: storedTimeToNanoseconds(record.created),
      updated: storedTimeToNanoseconds(record.updated),
      labels: Object.fromEntries(record.labels),
    },
    usage: { size: record.size, inodes: record.inodes },
    ...(record.remote ? { remote: record.remote } : {}),
  };
}

/** The fields containerd's filters can name on a snapshot. */
export function snapshotFieldAdaptor(info: SnapshotInfo) {
  return (fieldpath: readonly string[]): string | undefined => {
    switch (fieldpath[0]) {
      case 'kind':
        return kindName(info.kind);
      case 'name':
        return info.name;
      case 'parent':
        return info.parent;
      case 'labels': {
        const labelKey = fieldpath.slice(1).join('.');
        return Object.prototype.hasOwnProperty.call(info.labels, labelKey) ? info.labels[labelKey] : undefined;
      }
      default:
        return undefined;
    }
  };
}
