// The daemon is killed with SIGKILL while a container from a lazily pulled
// image runs; after a restart the remote layers are mounted again before the
// socket accepts calls, and a new container reads correct data.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../harness/daemon.js';
import { startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';
import { assertChecksums, checksumCommand, pushTestImages, type TestImages } from '../harness/estargz-image.js';
import { lazysnapCli } from '../harness/lazysnap-cli.js';
import { makeTempDir, removeTree } from '../harness/process.js';

let work: string;
let registry: RegistryInstance;
let daemon: DaemonInstance;
let containerd: ContainerdInstance;
let images: TestImages;

before(async () => {
  work = makeTempDir('e2e-restart');
  registry = await startRegistry(work);
  images = await pushTestImages(work, registry.host, 'restart');
  daemon = await startDaemon(join(work, 'lazysnap'));
  containerd = await startContainerd(work, { lazysnapSocket: daemon.socket });
});

after(async () => {
  await containerd?.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'long-runner']).catch(() => undefined);
  await containerd?.ctr(['containers', 'rm', 'long-runner']).catch(() => undefined);
  await containerd?.stop();
  await daemon?.stop();
  await registry?.stop();
  removeTree(work);
});

function fuseMounts(root: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(root) && l.includes(' - fuse'));
}

describe('restart of the daemon', () => {
  it('SIGKILL while a container runs; after restart a new container reads the right bytes', async () => {
    await lazysnapCli(['pull', '--quiet', '--address', containerd.socket, '--namespace', containerd.namespace, '--remote-snapshot', images.estargzRef]);
    await containerd.ctr(['run', '-d', '--snapshotter', 'lazysnap', images.estargzRef, 'long-runner', '/bin/sleep', '600']);
    const before = fuseMounts(daemon.root).length;
    assert.equal(before, 3, 'one FUSE mount per remote layer');


    await daemon.kill();
    daemon = await startDaemon(join(work, 'lazysnap'));
    // Mounted again before the socket answered: startDaemon returned only once calls succeed.
    const after = fuseMounts(daemon.root).filter((l) => !l.includes('(deleted)'));
    assert.equal(after.length, 3, `remote layers not mounted again: ${after.join('\n')}`);

    const out = await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', images.estargzRef, 'after-restart', ...checksumCommand(images.expected)]);
    assert.deepEqual(assertChecksums(out, images.expected), []);
  });

  it('a clean restart with the registry stopped still serves fully cached layers', async () => {
    // Read everything once so that every chunk is in the disk cache.
    await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', images.estargzRef, 'warm-all', '/bin/sh', '-c', 'find / -xdev -type f -exec cat {} + > /dev/null']);
    await daemon.stop();
    await registry.stop();
    try {
      daemon = await startDaemon(join(work, 'lazysnap'));
      await containerd.reachesLazysnap();
      const out = await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', images.estargzRef, 'offline', ...checksumCommand(images.expected)]);
      assert.deepEqual(assertChecksums(out, images.expected), []);
    } finally {
      await registry.restart();
    }
  });

  it('a layer that cannot be mounted again fails Mounts with a clear error; the daemon keeps working', async () => {
    await daemon.stop();
    // No cached TOC or chunk and no registry: the layers cannot come back.
    rmSync(join(daemon.root, 'cache'), { recursive: true, force: true });
    await registry.stop();
    try {
      daemon = await startDaemon(join(work, 'lazysnap'));
      const top = (await daemon.client.list(['kind==committed'])).find((i) => i.parent !== '')!;
      await assert.rejects(daemon.client.view('broken-view', top.name), (err: { code?: number; details?: string }) => {
        assert.equal(err.code, status.UNAVAILABLE);
        assert.match(err.details ?? '', /remote layer of .* is not available/);
        return true;
      });
      // containerd redials our restarted socket with backoff: wait out connection errors, then expect ours.
      let message = '';
      for (let attempt = 0; attempt < 20; attempt++) {
        message = await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', images.estargzRef, 'broken', '/bin/true']).then(() => 'ran', (err: Error) => err.message);
        if (!/connection error/.test(message)) break;
        await new Promise((r) => setTimeout(r, 1000));
      }
      assert.match(message, /remote layer of .* is not available/);
      // Ordinary snapshots still work.
      await daemon.client.prepare('still-fine', '');
      await daemon.client.commit('still-fine-c', 'still-fine');
    } finally {
      await registry.restart();
    }
  });
});

