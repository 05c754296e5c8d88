// A process killed with SIGKILL leaves its FUSE mounts behind, dead
// (ENOTCONN). cleanupStaleMounts must find and remove them, and only them.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MountpointBusyError, cleanupStaleMounts, isMounted, mountLayer, type MountedLayer } from '../../../src/fuse/index.js';
import { mountLinesUnder, recordingLogger, removeTempDir, tempDir } from './helpers.js';
import { spawnMountChild } from './mount-child-process.js';
import { buildLayer } from './memory-layer.js';

describe('stale FUSE mounts', () => {
  let dir: string;
  let otherDir: string;
  let first: string;
  let nested: string;
  let bystander: string;
  let child: ChildProcess | undefined;
  let live: MountedLayer | undefined;
  const logger = recordingLogger();

  before(async () => {
    dir = await tempDir('stale');
    otherDir = await tempDir('stale-other');
    first = join(dir, 'one');
    nested = join(dir, 'deeper', 'two');
    bystander = join(otherDir, 'live');
    for (const d of [first, nested, bystander]) await fs.mkdir(d, { recursive: true });
  });

  after(async () => {
    try {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await live?.unmount();
    } finally {
      await removeTempDir(dir, [nested, first]);
      await removeTempDir(otherDir, [bystander]);
    }
  });

  it('leaves dead mounts behind when the serving process is killed', async () => {
    child = await spawnMountChild([first, nested]);
    assert.equal(await fs.readFile(join(first, 'hello'), 'utf8'), 'hello from the child\n');
    const exited = new Promise((resolve) => child?.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    assert.equal(await isMounted(first), true);
    assert.equal(await isMounted(nested), true);
    // A lookup the kernel has not cached needs the dead daemon. (Cached
    // attributes of /hello would still be served: attr_timeout is long.)
    await assert.rejects(fs.stat(join(first, 'not-cached')), { code: 'ENOTCONN' });
  });

  it('refuses to mount over a stale mount, with a useful message', async () => {
    const layer = buildLayer([{ path: '/x', type: 'reg', data: 'x' }]);
    await assert.rejects(mountLayer(layer, first, { logger }), (err: unknown) => {
      assert.ok(err instanceof MountpointBusyError, `expected MountpointBusyError, got ${String(err)}`);
      assert.equal(err.mountpoint, first);
      assert.match(err.message, /already mounted/);
      return true;
    });
  });

  it('removes every stale mount under the directory, deepest first, and nothing else', async () => {
    live = await mountLayer(buildLayer([{ path: '/still', type: 'reg', data: 'here\n' }]), bystander, { logger });
    const removed = await cleanupStaleMounts(dir, logger);
    assert.deepEqual(removed, [nested, first]);
    assert.equal(await isMounted(first), false);
    assert.equal(await isMounted(nested), false);
    assert.deepEqual(await mountLinesUnder(dir), []);
    // Plain directories again, usable for a new mount.
    assert.deepEqual(await fs.readdir(first), []);
    // The live mount elsewhere is untouched.
    assert.equal(await isMounted(bystander), true);
    assert.equal(await fs.readFile(join(bystander, 'still'), 'utf8'), 'here\n');
    const warned = logger.records.filter((r) => r.msg === 'removed stale FUSE mount').map((r) => r.obj.mountpoint);
    assert.deepEqual(warned, [nested, first]);
  });

  it('finds nothing the second time', async () => {
    assert.deepEqual(await cleanupStaleMounts(dir, logger), []);
  });

  it('mounts again where a stale mount was', async () => {
    const again = await mountLayer(buildLayer([{ path: '/again', type: 'reg', data: 'again\n' }]), first, { logger });
    try {
      assert.equal(await fs.readFile(join(first, 'again'), 'utf8'), 'again\n');
    } finally {
      await again.unmount();
    }
    assert.equal(await isMounted(first), false);
  });
});
