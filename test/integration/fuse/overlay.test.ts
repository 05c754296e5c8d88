// Two FUSE layers stacked by overlayfs, the way a snapshotter's mounts use
// them: whiteouts (char 0/0) and opaque directories (trusted.overlay.opaque)
// served by the upper layer must hide what the lower one has.
import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isMounted, mountLayer, type MountedLayer } from '../../../src/fuse/index.js';
import { execFileAsync, mountLinesUnder, recordingLogger, removeTempDir, tempDir } from './helpers.js';
import { buildLayer } from './memory-layer.js';

describe('FUSE layers as overlayfs lowerdirs', () => {
  let dir: string;
  let lowerMnt: string;
  let upperMnt: string;
  let target: string;
  const mounted: MountedLayer[] = [];
  let overlayMounted = false;
  const logger = recordingLogger();

  before(async () => {
    dir = await tempDir('overlay');
    lowerMnt = join(dir, 'lower');
    upperMnt = join(dir, 'upper');
    target = join(dir, 'merged');
    for (const d of [lowerMnt, upperMnt, target]) await fs.mkdir(d);

    const lower = buildLayer([
      { path: '/etc/a', type: 'reg', data: 'from lower\n' },
      { path: '/etc/gone', type: 'reg', data: 'deleted by upper\n' },
      { path: '/opt/data/old', type: 'reg', data: 'hidden by opaque dir\n' },
      { path: '/opt/keep', type: 'reg', data: 'outside the opaque dir\n' },
    ]);
    const upper = buildLayer([
      // What the layer module makes of ".wh.gone" and ".wh..wh..opq".
      { path: '/etc/gone', type: 'char', mode: 0, devMajor: 0, devMinor: 0 },
      { path: '/opt/data', type: 'dir', xattrs: { 'trusted.overlay.opaque': 'y' } },
      { path: '/opt/data/new', type: 'reg', data: 'from upper\n' },
    ]);
    mounted.push(await mountLayer(lower, lowerMnt, { logger }));
    mounted.push(await mountLayer(upper, upperMnt, { logger }));
    // Asynchronous on purpose: mount(2) looks things up in our layers, and
    // the handlers need this process's event loop.
    await execFileAsync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${upperMnt}:${lowerMnt}`, target]);
    overlayMounted = true;
  });

  after(async () => {
    try {
      if (overlayMounted) await execFileAsync('umount', [target]).catch(() => execFileAsync('umount', ['-l', target]));
      for (const m of mounted) await m.unmount();
    } finally {
      await removeTempDir(dir, [target, upperMnt, lowerMnt]);
    }
  });

  it('hides a whited-out file', async () => {
    assert.deepEqual((await fs.readdir(join(target, 'etc'))).sort(), ['a']);
    await assert.rejects(fs.stat(join(target, 'etc/gone')), { code: 'ENOENT' });
    // The upper layer by itself still shows the whiteout node.
    assert.ok((await fs.lstat(join(upperMnt, 'etc/gone'))).isCharacterDevice());
  });

  it('shows only the upper layer\'s content in an opaque directory', async () => {
    assert.deepEqual(await fs.readdir(join(target, 'opt/data')), ['new']);
    await assert.rejects(fs.stat(join(target, 'opt/data/old')), { code: 'ENOENT' });
    assert.equal(await fs.readFile(join(target, 'opt/data/new'), 'utf8'), 'from upper\n');
    assert.deepEqual((await fs.readdir(join(target, 'opt'))).sort(), ['data', 'keep']);
  });

  it('shows lower-layer files the upper layer leaves alone', async () => {
    assert.equal(await fs.readFile(join(target, 'etc/a'), 'utf8'), 'from lower\n');
    assert.equal(await fs.readFile(join(target, 'opt/keep'), 'utf8'), 'outside the opaque dir\n');
  });

  it('detaches a layer lazily while the overlay still uses it', async () => {
    // Unmounting a layer an overlay still holds takes it out of the mount
    // table at once; the overlay keeps reading from it until it goes itself.
    await mounted[0]?.unmount();
    assert.equal(await isMounted(lowerMnt), false);
    assert.deepEqual(await mountLinesUnder(lowerMnt), []);
    assert.equal(await fs.readFile(join(target, 'etc/a'), 'utf8'), 'from lower\n');
    assert.deepEqual(logger.records.filter((r) => r.level === 'error'), []);
  });
});
