// lazysnap as containerd's proxy snapshotter, end to end: real containerd,
// runc, registry and skopeo on loopback; a three-layer image with a
// many-file layer, a whiteout and an opaque directory.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../harness/daemon.js';
import { startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';
import { buildImage, buildTestImageTree, pushImage } from '../harness/image.js';
import { makeTempDir, removeTree, waitUntil } from '../harness/process.js';

let work: string;
let registry: RegistryInstance;
let daemon: DaemonInstance;
let containerd: ContainerdInstance;
let ref: string;

before(async () => {
  work = makeTempDir('e2e');
  registry = await startRegistry(work);
  const image = buildImage(join(work, 'oci'), 'v1', buildTestImageTree(join(work, 'tree')));
  ref = pushImage(image, registry.host, 'lazysnap/union:v1');
  daemon = await startDaemon(join(work, 'lazysnap'));
  // containerd's GC scheduler spaces collections by its average metadata GC
  // time over pause_threshold (2 %), so one slow bolt commit on a loaded
  // machine can push the collection that follows `ctr snapshots rm` past this
  // file's 30 s waits (seen once in CI). A deletion threshold of one collects
  // after every deletion: the test waits for our snapshotter, not the pacing.
  containerd = await startContainerd(work, {
    lazysnapSocket: daemon.socket,
    extraConfig: ['[plugins."io.containerd.gc.v1.scheduler"]', '  deletion_threshold = 1'].join('\n'),
  });
});

after(async () => {
  await containerd?.stop();
  await daemon?.stop();
  await registry?.stop();
  removeTree(work);
});

describe('containerd with lazysnap as proxy snapshotter', () => {
  it('pulls and unpacks an image onto lazysnap snapshots', async () => {
    await containerd.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'lazysnap', ref]);
    const infos = await daemon.client.list();
    const committed = infos.filter((i) => i.kind === 3);
    assert.equal(committed.length, 3, `expected 3 committed layers, got ${infos.map((i) => i.name).join(', ')}`);
    const ls = await containerd.ctr(['snapshots', '--snapshotter', 'lazysnap', 'ls']);
    assert.equal(ls.trim().split('\n').length, 1 + 3, ls);
  });

  it('runs a container whose root is the right union of the layers', async () => {
    const script = [
      'cat /etc/lower/kept.txt',
      'test -e /etc/lower/gone.txt && echo WHITEOUT-BROKEN',
      'ls /opt/data',
      'cat /layer-1.txt /layer-2.txt',
      'test -f /usr/lib/python3.11/os.py && echo python-stdlib-present',
      'find /usr/lib/python3.11 /usr/share/zoneinfo | wc -l',
      'echo written > /tmp/rw && cat /tmp/rw',
    ].join('; ');
    const out = await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', ref, 'union-check', '/bin/sh', '-c', script]);
    const lines = out.trim().split('\n');
    assert.equal(lines[0], 'kept-from-layer-0');
    assert.ok(!out.includes('WHITEOUT-BROKEN'), 'whiteout did not hide /etc/lower/gone.txt');
    assert.equal(lines[1], 'new.txt', 'opaque directory must hide the lower /opt/data contents');
    assert.equal(lines[2], 'from-layer-1');
    assert.equal(lines[3], 'from-layer-2');
    assert.equal(lines[4], 'python-stdlib-present');
    assert.ok(Number(lines[5]) > 2000, `expected thousands of files, got ${lines[5]}`);
    assert.equal(lines[6], 'written');
  });

  it('answers ctr snapshots info, usage and rm', async () => {
    const ls = (await containerd.ctr(['snapshots', '--snapshotter', 'lazysnap', 'ls'])).trim().split('\n').slice(1);
    const rows = ls.map((line) => line.trim().split(/\s+/));
    const top = rows.find((r) => r[1] !== '' && rows.every((other) => other[1] !== r[0]));
    assert.ok(top, `no top layer in ${ls.join('|')}`);
    const info = JSON.parse(await containerd.ctr(['snapshots', '--snapshotter', 'lazysnap', 'info', top[0]!])) as { Kind: string; Name: string };
    assert.equal(info.Kind, 'Committed');
    const usage = await containerd.ctr(['snapshots', '--snapshotter', 'lazysnap', 'usage']);
    // The python layer is tens of MB: its usage must be reported, not zero.
    const rows2 = usage.trim().split('\n').slice(1);
    assert.equal(rows2.length, 3, usage);
    assert.ok(rows2.some((r) => /\s[1-9][0-9.]* MiB\s+[0-9]{4,}/.test(r)), `python layer usage not reported: ${usage}`);
    await containerd.ctr(['snapshots', '--snapshotter', 'lazysnap', 'prepare', 'scratch', top[0]!]);
    assert.ok((await daemon.client.list()).some((i) => i.kind === 2));
    await containerd.ctr(['snapshots', '--snapshotter', 'lazysnap', 'rm', 'scratch']);
    // containerd's metadata layer forgets it at once and removes it from the backend in its next GC.
    await waitUntil('scratch snapshot removal', async () => !(await daemon.client.list()).some((i) => i.kind === 2), 30_000, 250);
    await assert.rejects(containerd.ctr(['snapshots', '--snapshotter', 'lazysnap', 'rm', top[0]!.replace(/.$/, '0') + 'missing']));
  });

  it('image removal and containerd garbage collection remove our snapshots and their directories', async () => {
    await containerd.ctr(['images', 'rm', '--sync', ref]);
    await waitUntil('snapshots to be garbage collected', async () => (await daemon.client.list()).length === 0, 30_000, 250);
    const dirs = readdirSync(join(daemon.root, 'snapshots'));
    assert.deepEqual(dirs, []);
    assert.ok(existsSync(join(daemon.root, 'snapshots')));
  });
});
