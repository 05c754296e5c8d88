// `lazysnap pull` of an ordinary (non-eStargz) image behaves like
// `ctr images pull`: every layer is downloaded and unpacked, the image
// record is written, and `ctr run` starts it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../harness/daemon.js';
import { startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';
import { buildImage, buildTestImageTree, pushImage } from '../harness/image.js';
import { lazysnapCli } from '../harness/lazysnap-cli.js';
import { makeTempDir, removeTree } from '../harness/process.js';

let work: string;
let registry: RegistryInstance;
let daemon: DaemonInstance;
let containerd: ContainerdInstance;
let ref: string;

before(async () => {
  work = makeTempDir('e2e-pull');
  registry = await startRegistry(work);
  const image = buildImage(join(work, 'oci'), 'v1', buildTestImageTree(join(work, 'tree')));
  ref = pushImage(image, registry.host, 'lazysnap/plain:v1');
  daemon = await startDaemon(join(work, 'lazysnap'));
  containerd = await startContainerd(work, { lazysnapSocket: daemon.socket });
});

after(async () => {
  await containerd?.stop();
  await daemon?.stop();
  await registry?.stop();
  removeTree(work);
});

const pullArgs = (...extra: string[]) => ['pull', '--address', containerd.socket, '--namespace', containerd.namespace, '--snapshotter', 'lazysnap', '--plain-http', ...extra];

describe('lazysnap pull of a plain image', () => {
  it('with --remote-snapshot, downloads every layer (none is eStargz) and the container runs', async () => {
    const { stdout } = await lazysnapCli([...pullArgs('--remote-snapshot'), ref]);
    assert.match(stdout, /3 layers: 0 remote, 3 downloaded/);
    const images = await containerd.ctr(['images', 'ls', '-q']);
    assert.ok(images.split('\n').includes(ref), images);
    // Every layer blob is in containerd's content store, as after ctr images pull.
    const content = await containerd.ctr(['content', 'ls', '-q']);
    assert.equal(content.trim().split('\n').length, 3 + 2, content);
    assert.equal((await daemon.client.list()).filter((i) => i.kind === 3).length, 3);
    const out = await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', ref, 'plain-run', '/bin/sh', '-c', 'cat /etc/lower/kept.txt /layer-1.txt /layer-2.txt; ls /opt/data']);
    assert.equal(out, 'kept-from-layer-0\nfrom-layer-1\nfrom-layer-2\nnew.txt\n');
  });

  it('a second pull finds everything present and downloads nothing', async () => {
    const { stdout } = await lazysnapCli([...pullArgs('--remote-snapshot'), ref]);
    assert.match(stdout, /3 layers: 0 remote, 0 downloaded, 3 already present; 0.0 MiB/);
  });

  it('produces the same snapshots (chain IDs) as ctr images pull does', async () => {
    const ours = (await daemon.client.list()).filter((i) => i.kind === 3).map((i) => i.name.split('/').pop()).sort();
    await containerd.ctr(['images', 'rm', '--sync', ref]);
    await containerd.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', ref]);
    const theirs = (await containerd.ctr(['snapshots', '--snapshotter', 'overlayfs', 'ls'])).trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/)[0]).sort();
    assert.deepEqual(ours, theirs);
  });
});
