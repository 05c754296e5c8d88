// Remote snapshots end to end: an eStargz image pulled through
// `lazysnap pull --remote-snapshot` and through containerd's CRI plugin
// starts without its layers being downloaded, and containers read the
// right bytes from the lazily fetched layers.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../harness/daemon.js';
import { criLazysnapConfig, startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';
import { blobRequests } from '../harness/registry-log.js';
import { assertChecksums, checksumCommand, pushTestImages, type TestImages } from '../harness/estargz-image.js';
import { CriImageClient } from '../harness/cri.js';
import { lazysnapCli } from '../harness/lazysnap-cli.js';
import { makeTempDir, removeTree } from '../harness/process.js';
import { RegistryClient } from '../../src/registry/index.js';
import { REMOTE_SNAPSHOT, TARGET_SNAPSHOT_REF } from '../../src/containerd/labels.js';

let work: string;
let registry: RegistryInstance;
let daemon: DaemonInstance;
let containerd: ContainerdInstance;
let images: TestImages;
const registryClient = new RegistryClient();

before(async () => {
  work = makeTempDir('e2e-remote');
  registry = await startRegistry(work);
  images = await pushTestImages(work, registry.host, 'remote');
  daemon = await startDaemon(join(work, 'lazysnap'));
  containerd = await startContainerd(work, {
    lazysnapSocket: daemon.socket,
    enableCri: true,
    extraConfig: criLazysnapConfig(registry.host),
  });
});

after(async () => {
  await registryClient.close();
  await containerd?.stop();
  await daemon?.stop();
  await registry?.stop();
  removeTree(work);
});

async function layerDigests(ref: string): Promise<string[]> {
  return (await registryClient.resolve(ref)).manifest.layers.map((l) => l.digest);
}

async function contentDigests(namespace: string): Promise<string[]> {
  const out = await containerd.ctr(['--namespace', namespace, 'content', 'ls', '-q']).catch(() => '');
  return out.split('\n').filter(Boolean);
}

describe('remote snapshots', () => {
  it('lazysnap pull --remote-snapshot skips every eStargz layer; the registry only serves ranges of them', async () => {
    const { stdout } = await lazysnapCli(['pull', '--address', containerd.socket, '--namespace', containerd.namespace, '--remote-snapshot', images.estargzRef]);
    assert.match(stdout, /3 layers: 3 remote, 0 downloaded/);
    const layers = await layerDigests(images.estargzRef);
    const content = await contentDigests(containerd.namespace);
    for (const digest of layers) assert.ok(!content.includes(digest), `layer ${digest} was downloaded into containerd's content store`);
    const committed = (await daemon.client.list()).filter((i) => i.kind === 3);
    assert.equal(committed.length, 3);
    for (const info of committed) assert.ok(info.labels[REMOTE_SNAPSHOT], `${info.name} lacks the remote label`);
  });

  it('a container reads the right bytes from the lowest and the highest lazy layer', async () => {
    const out = await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', images.estargzRef, 'remote-read', ...checksumCommand(images.expected)]);
    assert.deepEqual(assertChecksums(out, images.expected), []);
    await new Promise((r) => setTimeout(r, 1500));
    const layers = new Set(await layerDigests(images.estargzRef));
    const gets = blobRequests(registry.readLog()).filter((r) => r.method === 'GET' && layers.has(r.digest));
    assert.ok(gets.length > 0, 'no layer bytes were fetched at all');
    assert.deepEqual(gets.filter((r) => r.status !== 206), [], 'a layer blob was fetched whole instead of by ranges');
  });

  it('containerd\'s CRI plugin pulls the image with no layer downloaded (target-ref protocol)', async () => {
    const cri = new CriImageClient(containerd.socket);
    try {
      const imageRef = await cri.pullImage(images.estargzRef);
      assert.match(imageRef, /^sha256:/);
    } finally {
      cri.close();
    }
    const layers = await layerDigests(images.estargzRef);
    const content = await contentDigests('k8s.io');
    assert.ok(content.length > 0, 'CRI wrote no content at all');
    for (const digest of layers) assert.ok(!content.includes(digest), `CRI downloaded layer ${digest}`);
    const targets = (await daemon.client.list([`labels."${TARGET_SNAPSHOT_REF}"`])).filter((i) => i.labels[REMOTE_SNAPSHOT]);
    assert.equal(targets.length, 3, 'each layer committed by lazysnap under its chain ID');
    const out = await containerd.ctr(['--namespace', 'k8s.io', 'run', '--rm', '--snapshotter', 'lazysnap', images.estargzRef, 'cri-read', ...checksumCommand(images.expected)]);
    assert.deepEqual(assertChecksums(out, images.expected), []);
  });

  it('stargz-snapshotter\'s ctr-remote images rpull (stargz labels) pulls it with no layer downloaded', async () => {
    const ns = 'ctr-remote';
    execFileSync('ctr-remote', ['--address', containerd.socket, '--namespace', ns, 'images', 'rpull', '--plain-http', '--snapshotter', 'lazysnap', images.estargzRef], { stdio: 'pipe', timeout: 300_000 });
    const layers = await layerDigests(images.estargzRef);
    const content = await contentDigests(ns);
    for (const digest of layers) assert.ok(!content.includes(digest), `ctr-remote downloaded layer ${digest}`);
    const out = await containerd.ctr(['--namespace', ns, 'run', '--rm', '--snapshotter', 'lazysnap', images.estargzRef, 'rpull-read', ...checksumCommand(images.expected)]);
    assert.deepEqual(assertChecksums(out, images.expected), []);
  });

  it('a mixed image downloads layers from the first non-eStargz one upward, and the union is right', async () => {
    const esgz = await registryClient.resolve(images.estargzRef);
    const plain = await registryClient.resolve(images.plainRef);
    const esgzConfig = await registryClient.getConfig(images.estargzRef, esgz.manifest);
    const plainConfig = await registryClient.getConfig(images.plainRef, plain.manifest);
    // eStargz bottom layer, plain middle layer, eStargz top layer.
    const pick = [esgz, plain, esgz];
    const configs = [esgzConfig, plainConfig, esgzConfig];
    const layers = pick.map((img, i) => img.manifest.layers[i]!);
    const diffIds = configs.map((c, i) => c.config.rootfs!.diff_ids[i]!);
    const mixedRef = `${registry.host}/lazysnap/remote:mixed`;
    for (const [i, layer] of layers.entries()) {
      const from = pick[i] === esgz ? images.estargzRef : images.plainRef;
      await registryClient.mountBlob(mixedRef, layer.digest, from);
    }
    const config = Buffer.from(JSON.stringify({ ...plainConfig.config, rootfs: { type: 'layers', diff_ids: diffIds } }));
    const configDesc = await registryClient.pushBlob(mixedRef, config);
    await registryClient.pushManifest(mixedRef, Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDesc.digest, size: config.length },
      layers,
    })), { mediaType: 'application/vnd.oci.image.manifest.v1+json' });

    const ns = 'mixed';
    const { stdout } = await lazysnapCli(['pull', '--address', containerd.socket, '--namespace', ns, '--remote-snapshot', mixedRef]);
    assert.match(stdout, /3 layers: 1 remote, 2 downloaded/);
    const content = await contentDigests(ns);
    assert.ok(!content.includes(layers[0]!.digest), 'the bottom eStargz layer must stay remote');
    assert.ok(content.includes(layers[1]!.digest) && content.includes(layers[2]!.digest), 'layers from the first plain one up must be downloaded');
    const out = await containerd.ctr(['--namespace', ns, 'run', '--rm', '--snapshotter', 'lazysnap', mixedRef, 'mixed-read', ...checksumCommand(images.expected)]);
    assert.deepEqual(assertChecksums(out, images.expected), []);
  });
});
