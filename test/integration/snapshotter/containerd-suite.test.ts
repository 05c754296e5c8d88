// containerd's snapshotter test suite (snapshots/testsuite in containerd
// 1.6), ported to talk to a running `lazysnap serve` over gRPC and to mount
// what it returns with the kernel's overlayfs, as containerd does.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../../harness/daemon.js';
import { makeTempDir, removeTree } from '../../harness/process.js';
import { mountAll, unmount } from '../../harness/mount.js';
import type { MountMessage, SnapshotsClient } from '../../../src/containerd/snapshots-client.js';

const KIND = { VIEW: 1, ACTIVE: 2, COMMITTED: 3 };

let work: string;
let daemon: DaemonInstance;
let client: SnapshotsClient;
let counter = 0;

before(async () => {
  work = makeTempDir('suite');
  daemon = await startDaemon(join(work, 'daemon'));
  client = daemon.client;
});

after(async () => {
  await daemon?.stop();
  removeTree(work);
});

function grpcCode(code: number) {
  return (err: unknown) => {
    assert.equal((err as { code?: number }).code, code, `expected gRPC code ${status[code]}, got ${String(err)}`);
    return true;
  };
}

/** Mounts, runs fn on the mounted dir, always unmounts. */
async function withMounted<T>(mounts: MountMessage[], fn: (dir: string) => T | Promise<T>): Promise<T> {
  const dir = join(work, `mnt-${counter++}`);
  mkdirSync(dir);
  mountAll(mounts, dir);
  try {
    return await fn(dir);
  } finally {
    unmount(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Prepares key on parent, applies fn to its mount, commits it as name. */
async function layer(name: string, parent: string, fn: (dir: string) => void): Promise<void> {
  const key = `${name}-active`;
  const mounts = await client.prepare(key, parent);
  await withMounted(mounts, fn);
  await client.commit(name, key);
}

describe('containerd snapshotter suite', () => {
  it('Basic: layers stack, commit preserves content, a child sees the union', async () => {
    await layer('basic-c1', '', (dir) => {
      writeFileSync(join(dir, 'foo'), 'foo\n');
      mkdirSync(join(dir, 'a/b/c'), { recursive: true });
      writeFileSync(join(dir, 'a/b/c/file'), 'deep');
    });
    const info = await client.stat('basic-c1');
    assert.equal(info.kind, KIND.COMMITTED);
    assert.equal(info.parent, '');
    await layer('basic-c2', 'basic-c1', (dir) => {
      assert.equal(readFileSync(join(dir, 'foo'), 'utf8'), 'foo\n');
      writeFileSync(join(dir, 'bar'), 'bar\n');
      rmSync(join(dir, 'foo'));
    });
    const mounts = await client.view('basic-view', 'basic-c2');
    await withMounted(mounts, (dir) => {
      assert.deepEqual(readdirSync(dir).sort(), ['a', 'bar']);
      assert.equal(readFileSync(join(dir, 'a/b/c/file'), 'utf8'), 'deep');
    });
    const c2 = await client.stat('basic-c2');
    assert.equal(c2.parent, 'basic-c1');
    await client.remove('basic-view');
    await client.remove('basic-c2');
    await client.remove('basic-c1');
  });

  it('StatActive and StatCommitted report name, parent and kind', async () => {
    await client.prepare('stat-a', '');
    let info = await client.stat('stat-a');
    assert.equal(info.name, 'stat-a');
    assert.equal(info.kind, KIND.ACTIVE);
    assert.equal(info.parent, '');
    await client.commit('stat-c', 'stat-a');
    info = await client.stat('stat-c');
    assert.equal(info.name, 'stat-c');
    assert.equal(info.kind, KIND.COMMITTED);
    await assert.rejects(client.stat('stat-a'), grpcCode(status.NOT_FOUND));
    await client.view('stat-v', 'stat-c');
    info = await client.stat('stat-v');
    assert.equal(info.kind, KIND.VIEW);
    assert.equal(info.parent, 'stat-c');
  });

  it('Transitivity: a file written in the lowest layer is visible three layers up', async () => {
    await layer('tr-1', '', (dir) => writeFileSync(join(dir, 'low'), 'from-1'));
    await layer('tr-2', 'tr-1', (dir) => writeFileSync(join(dir, 'mid'), 'from-2'));
    await layer('tr-3', 'tr-2', (dir) => {
      assert.equal(readFileSync(join(dir, 'low'), 'utf8'), 'from-1');
      assert.equal(readFileSync(join(dir, 'mid'), 'utf8'), 'from-2');
    });
  });

  it('PrepareView failures: existing key, missing parent, uncommitted parent', async () => {
    await client.prepare('pv-a', '');
    await assert.rejects(client.prepare('pv-a', ''), grpcCode(status.ALREADY_EXISTS));
    await assert.rejects(client.view('pv-a', ''), grpcCode(status.ALREADY_EXISTS));
    await assert.rejects(client.prepare('pv-b', 'does-not-exist'), grpcCode(status.NOT_FOUND));
    await assert.rejects(client.view('pv-b', 'pv-a'), grpcCode(status.INVALID_ARGUMENT));
    await client.commit('pv-c', 'pv-a');
    await assert.rejects(client.commit('pv-c', 'pv-a'), grpcCode(status.ALREADY_EXISTS));
    await client.view('pv-v', 'pv-c');
    await assert.rejects(client.commit('pv-c2', 'pv-v'), grpcCode(status.FAILED_PRECONDITION));
    await assert.rejects(client.commit('pv-c3', 'nope'), grpcCode(status.NOT_FOUND));
    await assert.rejects(client.mounts('pv-c'), grpcCode(status.FAILED_PRECONDITION));
    await assert.rejects(client.mounts('nope'), grpcCode(status.NOT_FOUND));
    await assert.rejects(client.prepare('', ''), grpcCode(status.INVALID_ARGUMENT));
  });

  it('Update: timestamps, label paths, immutable fields', async () => {
    const t1 = Date.now();
    await client.prepare('up-a', '');
    await client.commit('up-c1', 'up-a');
    await client.prepare('up-a1', 'up-c1');
    await client.view('up-v1', 'up-c1');
    const t2 = Date.now();
    for (const name of ['up-c1', 'up-a1', 'up-v1']) {
      let info = await client.stat(name);
      const created = toMs(info.createdAt);
      assert.ok(created >= t1 - 1 && created <= t2 + 1, `${name} created ${created} not in [${t1}, ${t2}]`);
      assert.deepEqual(info.createdAt, info.updatedAt);
      const root = new Date().toISOString();
      const expected = { l1: 'v1', l2: 'v2', l3: 'v3', 'containerd.io/gc.root': root };
      const u1 = Date.now();
      info = await client.update({ ...info, parent: 'doesnotexist', labels: expected });
      const u2 = Date.now();
      assert.deepEqual(info.createdAt, (await client.stat(name)).createdAt);
      assert.ok(toMs(info.updatedAt) >= u1 - 1 && toMs(info.updatedAt) <= u2 + 1);
      assert.notEqual(info.parent, 'doesnotexist');
      assert.deepEqual(info.labels, expected);
      info = await client.update({ ...info, labels: { l1: 'updated', l4: 'v4' } }, ['labels.l1', 'labels.l2']);
      assert.deepEqual(info.labels, { l1: 'updated', l3: 'v3', 'containerd.io/gc.root': root });
      info = await client.update({ ...info, labels: { l4: 'v4', 'containerd.io/gc.root': root } }, ['labels']);
      assert.deepEqual(info.labels, { l4: 'v4', 'containerd.io/gc.root': root });
      await assert.rejects(client.update({ ...info, parent: 'doesnotexist' }, ['parent']), grpcCode(status.INVALID_ARGUMENT));
      assert.deepEqual((await client.stat(name)).labels, { l4: 'v4', 'containerd.io/gc.root': root });
    }
    await assert.rejects(client.update({ name: 'up-missing', labels: {} }), grpcCode(status.NOT_FOUND));
  });

  it('Remove: keys are reusable, parents with children cannot be removed', async () => {
    await client.prepare('rm-a', '');
    await client.commit('rm-c1', 'rm-a');
    await client.prepare('rm-reuse', 'rm-c1');
    await assert.rejects(client.remove('rm-c1'), grpcCode(status.FAILED_PRECONDITION));
    await client.remove('rm-reuse');
    await client.view('rm-reuse', 'rm-c1');
    await client.remove('rm-reuse');
    await client.prepare('rm-reuse', '');
    await client.remove('rm-c1');
    await client.commit('rm-c1', 'rm-reuse');
    await assert.rejects(client.remove('rm-missing'), grpcCode(status.NOT_FOUND));
  });

  it('RemoveIntermediateSnapshot: the chain must be removed top-down, directories disappear', async () => {
    await layer('ri-base', '', (dir) => writeFileSync(join(dir, 'f'), 'x'));
    await layer('ri-mid', 'ri-base', (dir) => writeFileSync(join(dir, 'g'), 'y'));
    await client.prepare('ri-top', 'ri-mid');
    await assert.rejects(client.remove('ri-mid'), grpcCode(status.FAILED_PRECONDITION));
    const before = readdirSync(join(daemon.root, 'snapshots')).length;
    await client.remove('ri-top');
    await client.remove('ri-mid');
    await client.remove('ri-base');
    assert.equal(readdirSync(join(daemon.root, 'snapshots')).length, before - 3);
  });

  it('Walk: containerd filters select by name, parent, kind and labels', async () => {
    await client.prepare('w-a', '', { 'containerd.io/snapshot.ref': 'chain-1', team: 'x' });
    await client.commit('w-c1', 'w-a');
    await client.prepare('w-a2', 'w-c1', { 'containerd.io/snapshot.ref': 'chain-2', 'dotted.key.name': 'v' });
    await client.view('w-v', 'w-c1', { team: 'y' });
    const names = async (...filters: string[]) => (await client.list(filters)).map((i) => i.name).filter((n) => n.startsWith('w-')).sort();
    assert.deepEqual(await names('name==w-c1'), ['w-c1']);
    assert.deepEqual(await names('parent==w-c1'), ['w-a2', 'w-v']);
    assert.deepEqual(await names('kind==view'), ['w-v']);
    assert.deepEqual(await names('kind==committed,name==w-c1'), ['w-c1']);
    assert.deepEqual(await names('labels."containerd.io/snapshot.ref"==chain-1'), ['w-c1']);
    assert.deepEqual(await names('labels."containerd.io/snapshot.ref"==chain-2,parent==w-c1'), ['w-a2']);
    assert.deepEqual(await names('labels."containerd.io/snapshot.ref"==chain-2,parent==other'), []);
    assert.deepEqual(await names('labels.team'), ['w-c1', 'w-v']);
    assert.deepEqual(await names('labels.dotted.key.name==v'), ['w-a2']);
    assert.deepEqual(await names('labels.team==x', 'labels.team==y'), ['w-c1', 'w-v']);
    assert.deepEqual(await names('labels.team!=x'), ['w-a2', 'w-v']);
    assert.deepEqual(await names('name~=^w-c'), ['w-c1']);
    assert.deepEqual(await names('name=="w-v"'), ['w-v']);
    await assert.rejects(client.list(['name==']), grpcCode(status.INVALID_ARGUMENT));
    await assert.rejects(client.list(['labels.=x']), grpcCode(status.INVALID_ARGUMENT));
  });

  it('StatInWalk: every listed snapshot can be stat-ed and agrees with List', async () => {
    for (const info of await client.list()) {
      const stat = await client.stat(info.name);
      assert.deepEqual(stat, info);
    }
  });

  it('List streams more than one batch', async () => {
    const keys = Array.from({ length: 230 }, (_, i) => `many-${String(i).padStart(3, '0')}`);
    for (const k of keys) await client.prepare(k, '', { group: 'many' });
    const listed = await client.list(['labels.group==many']);
    assert.deepEqual(listed.map((i) => i.name).sort(), keys);
  });

  it('LayerFileUpdate and DeletedFilesInChildSnapshot: upper layers win, deletions hide lower files', async () => {
    await layer('lf-1', '', (dir) => {
      writeFileSync(join(dir, 'foo'), 'first');
      mkdirSync(join(dir, 'gone'));
      writeFileSync(join(dir, 'gone/file'), 'x');
    });
    await layer('lf-2', 'lf-1', (dir) => {
      writeFileSync(join(dir, 'foo'), 'second');
      rmSync(join(dir, 'gone'), { recursive: true });
    });
    await layer('lf-3', 'lf-2', (dir) => {
      assert.equal(readFileSync(join(dir, 'foo'), 'utf8'), 'second');
      assert.equal(existsSync(join(dir, 'gone')), false);
      mkdirSync(join(dir, 'gone'));
    });
    await withMounted(await client.view('lf-view', 'lf-3'), (dir) => {
      assert.deepEqual(readdirSync(join(dir, 'gone')), []);
    });
  });

  it('Chown, DirectoryPermissionOnCommit and MoveFileFromLowerLayer survive commit', async () => {
    await layer('perm-1', '', (dir) => {
      mkdirSync(join(dir, 'dir1'), { mode: 0o700 });
      chmodSync(join(dir, 'dir1'), 0o700);
      writeFileSync(join(dir, 'owned'), 'o');
      chownSync(join(dir, 'owned'), 1000, 1001);
      writeFileSync(join(dir, 'movable'), 'm');
    });
    await layer('perm-2', 'perm-1', (dir) => {
      renameSync(join(dir, 'movable'), join(dir, 'moved'));
      chownSync(join(dir, 'dir1'), 42, 43);
    });
    await withMounted(await client.view('perm-view', 'perm-2'), (dir) => {
      const d = statSync(join(dir, 'dir1'));
      assert.equal(d.mode & 0o777, 0o700);
      assert.equal(d.uid, 42);
      assert.equal(d.gid, 43);
      const o = statSync(join(dir, 'owned'));
      assert.equal(o.uid, 1000);
      assert.equal(o.gid, 1001);
      assert.equal(existsSync(join(dir, 'movable')), false);
      assert.equal(readFileSync(join(dir, 'moved'), 'utf8'), 'm');
    });
  });

  it('ViewReadonly: a view cannot be written to', async () => {
    await layer('ro-1', '', (dir) => writeFileSync(join(dir, 'f'), 'x'));
    for (const [key, parent] of [['ro-view-1', 'ro-1'], ['ro-view-0', '']] as const) {
      await withMounted(await client.view(key, parent), (dir) => {
        assert.throws(() => writeFileSync(join(dir, 'new'), 'y'), (err: NodeJS.ErrnoException) => err.code === 'EROFS');
      });
    }
    await layer('ro-2', 'ro-1', (dir) => writeFileSync(join(dir, 'g'), 'y'));
    await withMounted(await client.view('ro-view-2', 'ro-2'), (dir) => {
      assert.equal(readFileSync(join(dir, 'f'), 'utf8'), 'x');
      assert.throws(() => writeFileSync(join(dir, 'new'), 'y'), (err: NodeJS.ErrnoException) => err.code === 'EROFS');
    });
  });

  it('RootPermission: a new snapshot root is 0755', async () => {
    await withMounted(await client.prepare('rootperm', ''), (dir) => {
      assert.equal(statSync(dir).mode & 0o777, 0o755);
    });
  });

  it('128LayersMount: a 128-layer chain mounts and shows every layer', async () => {
    let parent = '';
    for (let i = 0; i < 128; i++) {
      const name = `deep-${i}`;
      await client.prepare(`${name}-active`, parent);
      const info = await client.stat(`${name}-active`);
      assert.equal(info.parent, parent);
      // Write directly into the snapshot's directory: mounting 128 times would only slow the test.
      const mounts = await client.mounts(`${name}-active`);
      const upper = mounts[0]!.type === 'bind' ? mounts[0]!.source : mounts[0]!.options.find((o) => o.startsWith('upperdir='))!.slice(9);
      writeFileSync(join(upper, `layer-${i}`), String(i));
      writeFileSync(join(upper, 'top'), String(i));
      await client.commit(name, `${name}-active`);
      parent = name;
    }
    const mounts = await client.prepare('deep-top', parent);
    const lower = mounts[0]!.options.find((o) => o.startsWith('lowerdir='))!;
    assert.equal(lower.split(':').length, 128);
    await withMounted(mounts, (dir) => {
      assert.equal(readFileSync(join(dir, 'top'), 'utf8'), '127');
      assert.equal(readFileSync(join(dir, 'layer-0'), 'utf8'), '0');
      assert.equal(readdirSync(dir).filter((n) => n.startsWith('layer-')).length, 128);
    });
  });

  it('Mounts match containerd overlayfs: bind for parentless, overlay with nearest parent first', async () => {
    const bindRw = await client.prepare('m-a', '');
    assert.equal(bindRw.length, 1);
    assert.equal(bindRw[0]!.type, 'bind');
    assert.deepEqual(bindRw[0]!.options, ['rw', 'rbind']);
    await client.commit('m-c1', 'm-a');
    await client.prepare('m-b', 'm-c1');
    await client.commit('m-c2', 'm-b');
    const viewOne = await client.view('m-v1', 'm-c1');
    assert.equal(viewOne[0]!.type, 'bind');
    assert.deepEqual(viewOne[0]!.options, ['ro', 'rbind']);
    const active = await client.prepare('m-top', 'm-c2');
    assert.equal(active[0]!.type, 'overlay');
    const opts = active[0]!.options;
    assert.ok(opts.some((o) => o.startsWith('upperdir=')));
    assert.ok(opts.some((o) => o.startsWith('workdir=')));
    const lowers = opts.find((o) => o.startsWith('lowerdir='))!.slice(9).split(':');
    assert.equal(lowers.length, 2);
    const view2 = await client.view('m-v2', 'm-c2');
    assert.deepEqual(view2[0]!.options.find((o) => o.startsWith('lowerdir='))!.slice(9).split(':'), lowers);
    assert.deepEqual(await client.mounts('m-top'), active);
  });
});

describe('labels, usage and cleanup', () => {
  it('labels over containerd\'s 4096-byte limit or with an empty key are InvalidArgument', async () => {
    await assert.rejects(client.prepare('lab-1', '', { k: 'v'.repeat(4096) }), grpcCode(status.INVALID_ARGUMENT));
    await assert.rejects(client.prepare('lab-1', '', { '': 'v' }), grpcCode(status.INVALID_ARGUMENT));
    await client.prepare('lab-1', '', { k: 'v'.repeat(4095) });
    await assert.rejects(client.commit('lab-c', 'lab-1', { big: 'x'.repeat(5000) }), grpcCode(status.INVALID_ARGUMENT));
    await assert.rejects(client.update({ name: 'lab-1', labels: { big: 'x'.repeat(5000) } }), grpcCode(status.INVALID_ARGUMENT));
    assert.equal((await client.stat('lab-1')).kind, KIND.ACTIVE);
  });

  it('Commit keeps the active snapshot\'s labels and adds those passed to Commit', async () => {
    await client.prepare('cl-a', '', { keep: 'me', over: 'old' });
    await client.commit('cl-c', 'cl-a', { over: 'new', added: 'yes' });
    assert.deepEqual((await client.stat('cl-c')).labels, { keep: 'me', over: 'new', added: 'yes' });
  });

  it('Usage: computed for active snapshots, recorded at commit', async () => {
    const mounts = await client.prepare('us-a', '');
    const empty = await client.usage('us-a');
    assert.equal(empty.inodes, 1);
    await withMounted(mounts, (dir) => {
      writeFileSync(join(dir, 'a'), Buffer.alloc(64 * 1024, 1));
      writeFileSync(join(dir, 'b'), Buffer.alloc(128 * 1024, 2));
      mkdirSync(join(dir, 'd'));
    });
    const active = await client.usage('us-a');
    assert.equal(active.inodes, 4);
    assert.ok(active.size >= 192 * 1024, `size ${active.size}`);
    await client.commit('us-c', 'us-a');
    assert.deepEqual(await client.usage('us-c'), active);
    await assert.rejects(client.usage('us-missing'), grpcCode(status.NOT_FOUND));
  });

  it('Cleanup removes directories the metadata does not know and keeps the rest', async () => {
    await layer('cu-keep', '', (dir) => writeFileSync(join(dir, 'f'), 'keep'));
    const orphan = join(daemon.root, 'snapshots', '999999');
    mkdirSync(join(orphan, 'fs'), { recursive: true });
    writeFileSync(join(orphan, 'fs', 'junk'), 'junk');
    const stray = join(daemon.root, 'snapshots', 'not-a-snapshot');
    mkdirSync(stray);
    await client.cleanup();
    assert.equal(existsSync(orphan), false);
    assert.equal(existsSync(stray), false);
    await withMounted(await client.view('cu-view', 'cu-keep'), (dir) => {
      assert.equal(readFileSync(join(dir, 'f'), 'utf8'), 'keep');
    });
  });
});

function toMs(ts: { seconds: number; nanos: number } | null): number {
  assert.ok(ts, 'timestamp missing');
  return Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6);
}
