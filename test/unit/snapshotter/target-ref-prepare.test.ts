import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chown, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { REMOTE_SNAPSHOT, STARGZ_DIGEST, STARGZ_REFERENCE, TARGET_SNAPSHOT_REF } from '../../../src/containerd/labels.js';
import { AlreadyExistsError } from '../../../src/snapshotter/errors.js';
import { MetadataStore, type RemoteLayerRef } from '../../../src/snapshotter/metadata-store.js';
import type { NotRemote, RemoteMounter } from '../../../src/snapshotter/remote/remote-mounter.js';
import type { RemoteRequest } from '../../../src/snapshotter/remote/remote-request.js';
import { Snapshotter } from '../../../src/snapshotter/snapshotter.js';
import { Kind } from '../../../src/snapshotter/types.js';

/** A mounter that serves every layer and records who holds which mount; decide() waits for `gate` so Prepares can race. */
class RecordingMounter implements RemoteMounter {
  constructor(private readonly mountRoot: string) {}
  readonly held = new Map<string, RemoteLayerRef>();
  readonly released: string[] = [];
  /** Layers (digests) whose mount fails, as when FUSE cannot mount. */
  readonly failing = new Set<string>();
  gate: Promise<void> = Promise.resolve();

  async decide(request: RemoteRequest): Promise<RemoteLayerRef | NotRemote> {
    await this.gate;
    return { ref: request.ref, digest: request.layerDigest, tocDigest: 'sha256:toc' };
  }

  async acquire(layer: RemoteLayerRef, holder: string): Promise<string> {
    if (this.failing.has(layer.digest)) throw new Error(`cannot mount ${layer.digest}`);
    this.held.set(holder, layer);
    const path = this.pathOf(layer.digest);
    await mkdir(path, { recursive: true });
    return path;
  }

  pathOf(digest: string): string {
    return join(this.mountRoot, digest.replace(':', '-'));
  }

  async release(_layer: RemoteLayerRef, holder: string): Promise<void> {
    this.held.delete(holder);
    this.released.push(holder);
  }

  async retainOnly(): Promise<void> {}
  openImage(): void {}
  async cleanupStale(): Promise<string[]> {
    return [];
  }
  async close(): Promise<void> {}
}

function targetRefLabels(target: string, layer: string): Record<string, string> {
  return { [TARGET_SNAPSHOT_REF]: target, [STARGZ_REFERENCE]: 'registry.test/app:1', [STARGZ_DIGEST]: layer };
}

let root: string;
let store: MetadataStore;
/** The store's write transactions, by operation name: each is one durable (fsynced) commit. */
let writes: string[];
let mounter: RecordingMounter;
let snapshotter: Snapshotter;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'lazysnap-target-ref-'));
  writes = [];
  store = MetadataStore.open(join(root, 'metadata.lmdb'), (operation) => writes.push(operation));
  mounter = new RecordingMounter(join(root, 'mnt'));
  snapshotter = await Snapshotter.open({ root, store, logger: pino({ level: 'silent' }), overlay: { indexOff: false, userxattr: false }, remote: mounter });
});

afterEach(async () => {
  await store.close();
  await rm(root, { recursive: true, force: true });
});

describe('target-ref Prepare of a remote layer', () => {
  it('answers AlreadyExists with the layer committed under its chain ID and nothing left under the Prepare key', async () => {
    await assert.rejects(snapshotter.prepare('extract-1 sha256:chain1', '', targetRefLabels('sha256:chain1', 'sha256:layer1')), AlreadyExistsError);
    // Every layer of a lazy pull passes here in turn: one durable write per layer, not a create and a commit.
    assert.deepEqual(writes, ['create-committed']);
    const committed = await snapshotter.stat('sha256:chain1');
    assert.equal(committed.kind, Kind.Committed);
    assert.equal(committed.labels[REMOTE_SNAPSHOT], 'remote');
    assert.equal(committed.labels[TARGET_SNAPSHOT_REF], 'sha256:chain1');
    assert.equal(store.get('extract-1 sha256:chain1'), undefined);
    assert.deepEqual([...mounter.held.values()].map((layer) => layer.digest), ['sha256:layer1']);

    // The next layer stacks on it, and a container's snapshot sees both lowerdirs.
    await assert.rejects(snapshotter.prepare('extract-2 sha256:chain2', 'sha256:chain1', targetRefLabels('sha256:chain2', 'sha256:layer2')), AlreadyExistsError);
    assert.equal((await snapshotter.stat('sha256:chain2')).parent, 'sha256:chain1');
    const [mount] = await snapshotter.prepare('container', 'sha256:chain2');
    assert.ok(mount?.options.some((option) => option === `lowerdir=${join(root, 'mnt', 'sha256-layer2')}:${join(root, 'mnt', 'sha256-layer1')}`), JSON.stringify(mount?.options));
    // A parent with children cannot go.
    await assert.rejects(snapshotter.remove('sha256:chain1'));
  });

  it('keeps one snapshot when two Prepares of the same layer race, and releases the loser\'s mount', async () => {
    let open!: () => void;
    mounter.gate = new Promise((resolve) => (open = resolve));
    const racing = [
      snapshotter.prepare('extract-a sha256:chain1', '', targetRefLabels('sha256:chain1', 'sha256:layer1')),
      snapshotter.prepare('extract-b sha256:chain1', '', targetRefLabels('sha256:chain1', 'sha256:layer1')),
    ];
    open();
    const outcomes = await Promise.allSettled(racing);
    for (const outcome of outcomes) {
      assert.equal(outcome.status, 'rejected');
      assert.ok(outcome.reason instanceof AlreadyExistsError, String(outcome.reason));
    }
    assert.deepEqual((await snapshotter.list([])).map((info) => info.name), ['sha256:chain1']);
    assert.equal(mounter.held.size, 1, 'the winner holds the mount');
    assert.equal(mounter.released.length, 1, 'the loser let its reference go');
    const id = store.get('sha256:chain1')?.id;
    assert.deepEqual(await readdir(join(root, 'snapshots')), [String(id)], 'the loser\'s directory is gone');
  });

  it('stacks a remote layer on a remote parent without asking the parent\'s mount anything', async () => {
    await assert.rejects(snapshotter.prepare('extract-1 sha256:chain1', '', targetRefLabels('sha256:chain1', 'sha256:layer1')), AlreadyExistsError);
    // The parent's mount answers nothing (here: it is gone). A child served remotely never uses its own
    // fs/ directory, so the parent's owner is not needed, and a parent busy opening layers cannot hold it up.
    await rm(mounter.pathOf('sha256:layer1'), { recursive: true });
    await assert.rejects(snapshotter.prepare('extract-2 sha256:chain2', 'sha256:chain1', targetRefLabels('sha256:chain2', 'sha256:layer2')), AlreadyExistsError);
    assert.equal((await snapshotter.stat('sha256:chain2')).labels[REMOTE_SNAPSHOT], 'remote');
  });

  it('gives a layer that falls back to download the owner of its parent\'s root, like any snapshot', async () => {
    await assert.rejects(snapshotter.prepare('extract-1 sha256:chain1', '', targetRefLabels('sha256:chain1', 'sha256:layer1')), AlreadyExistsError);
    await chown(mounter.pathOf('sha256:layer1'), 1234, 5678);
    mounter.failing.add('sha256:layer2');
    const mounts = await snapshotter.prepare('extract-2 sha256:chain2', 'sha256:chain1', targetRefLabels('sha256:chain2', 'sha256:layer2'));
    assert.equal(mounts.length, 1, 'an ordinary snapshot to unpack into');
    const info = await snapshotter.stat('extract-2 sha256:chain2');
    assert.equal(info.kind, Kind.Active);
    assert.equal(info.labels[REMOTE_SNAPSHOT], undefined);
    const fs = await stat(join(root, 'snapshots', String(store.get('extract-2 sha256:chain2')?.id), 'fs'));
    assert.deepEqual([fs.uid, fs.gid], [1234, 5678]);
  });
});
