// Kubernetes pull secrets end to end: kubelet-style CRI PullImage calls on
// lazysnap's socket with the credentials in `auth`, forwarded to containerd's
// CRI, against a docker-registry that demands htpasswd Basic auth, with no
// docker config on the node. The credentials reach lazysnap only through the
// CRI call, and lazysnap uses them to serve the layers lazily.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServiceError } from '@grpc/grpc-js';
import { startDaemon, type DaemonInstance } from '../harness/daemon.js';
import { criLazysnapConfig, startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';
import { blobRequests } from '../harness/registry-log.js';
import { assertChecksums, checksumCommand, pushTestImages, type TestImages } from '../harness/estargz-image.js';
import { CriImageClient } from '../harness/cri.js';
import { makeTempDir, removeTree } from '../harness/process.js';
import { RegistryClient } from '../../src/registry/index.js';
import { REMOTE_SNAPSHOT } from '../../src/containerd/labels.js';

const USER = 'kubelet-user';
const PASSWORD = 'pull-secret-0f3c9d';

let work: string;
let registry: RegistryInstance;
let daemon: DaemonInstance;
let containerd: ContainerdInstance;
let images: TestImages;
/** A one-layer eStargz image in another repository: its Prepare is what lazysnap has no credentials for. */
let otherRef: string;
let otherLayer: string;

/**
 * docker-registry with htpasswd Basic auth over the storage the images were
 * pushed to without auth, on the same port, so the references stay valid.
 * The bcrypt line comes from htpasswd(1): docker-registry accepts nothing else.
 */
async function startAuthRegistry(dir: string, storage: string, host: string): Promise<RegistryInstance> {
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, execFileSync('htpasswd', ['-Bbn', USER, PASSWORD], { encoding: 'utf8' }));
  return startRegistry(dir, { port: Number(host.split(':')[1]), storage, htpasswd, name: 'auth-registry' });
}

/** A one-layer image of the test image's top eStargz layer, pushed to another repository (before auth is on). */
async function pushOneLayerImage(client: RegistryClient, from: string, to: string): Promise<string> {
  const resolved = await client.resolve(from);
  const config = await client.getConfig(from, resolved.manifest);
  const top = resolved.manifest.layers[resolved.manifest.layers.length - 1]!;
  await client.mountBlob(to, top.digest, from);
  const configBytes = Buffer.from(JSON.stringify({ ...config.config, rootfs: { type: 'layers', diff_ids: [config.config.rootfs!.diff_ids.at(-1)] } }));
  const configDesc = await client.pushBlob(to, configBytes);
  await client.pushManifest(to, Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDesc.digest, size: configBytes.length },
    layers: [top],
  })), { mediaType: 'application/vnd.oci.image.manifest.v1+json' });
  return top.digest;
}

/** The daemon's log and its FUSE manager's (which talks to the registry with the forwarded credentials). */
function daemonLog(): string {
  const managerLog = join(daemon.root, 'fuse-manager', 'manager.log');
  return readFileSync(daemon.process.logPath, 'utf8') + (existsSync(managerLog) ? readFileSync(managerLog, 'utf8') : '');
}

function logLines(text: string): Array<Record<string, unknown>> {
  return text.split('\n').flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

async function contentDigests(): Promise<string[]> {
  const out = await containerd.ctr(['--namespace', 'k8s.io', 'content', 'ls', '-q']).catch(() => '');
  return out.split('\n').filter(Boolean);
}

before(async () => {
  work = makeTempDir('e2e-cri-keychain');
  // No docker config on the node: the daemon inherits this empty DOCKER_CONFIG.
  const dockerConfigDir = join(work, 'docker-config');
  mkdirSync(dockerConfigDir);
  process.env.DOCKER_CONFIG = dockerConfigDir;

  const seedDir = join(work, 'seed');
  mkdirSync(seedDir);
  const seed = await startRegistry(seedDir);
  images = await pushTestImages(work, seed.host, 'private');
  otherRef = `${seed.host}/lazysnap/other:esgz`;
  const client = new RegistryClient();
  try {
    otherLayer = await pushOneLayerImage(client, images.estargzRef, otherRef);
  } finally {
    await client.close();
  }
  await seed.stop();
  registry = await startAuthRegistry(work, join(seedDir, 'registry-storage'), seed.host);

  const containerdSocket = join(work, 'containerd', 'containerd.sock');
  const config = join(work, 'lazysnap.toml');
  writeFileSync(config, `[cri_keychain]\nenable_keychain = true\nimage_service_path = "${containerdSocket}"\n`);
  // As deployed: the FUSE manager talks to the registry, with the credentials the daemon passes on.
  daemon = await startDaemon(join(work, 'lazysnap'), ['--config', config], { fuseManager: true });
  containerd = await startContainerd(work, {
    lazysnapSocket: daemon.socket,
    enableCri: true,
    extraConfig: criLazysnapConfig(registry.host),
  });
  assert.equal(containerd.socket, containerdSocket);
});

after(async () => {
  await containerd?.stop();
  await daemon?.stopWithFuseManager();
  await registry?.process.stop();
  delete process.env.DOCKER_CONFIG;
  removeTree(work);
});

describe('CRI keychain (Kubernetes pull secrets)', () => {
  it('without credentials the registry refuses the pull: kubelet gets containerd\'s error unchanged and lazysnap logs it', async () => {
    const viaLazysnap = new CriImageClient(daemon.socket);
    const direct = new CriImageClient(containerd.socket);
    try {
      const proxied = await viaLazysnap.pullImage(images.estargzRef).then(() => undefined, (err: ServiceError) => err);
      const fromContainerd = await direct.pullImage(images.estargzRef).then(() => undefined, (err: ServiceError) => err);
      assert.ok(proxied && fromContainerd, 'both pulls must fail');
      assert.match(proxied.details, /401 Unauthorized/);
      assert.equal(proxied.code, fromContainerd.code);
      assert.equal(proxied.details, fromContainerd.details);
    } finally {
      viaLazysnap.close();
      direct.close();
    }
    const failed = logLines(daemonLog()).find((l) => l.msg === 'CRI image service call failed in containerd' && l.image === images.estargzRef);
    assert.ok(failed, 'lazysnap logs the refused pull');
    assert.equal(failed.method, 'PullImage');
    assert.match(String(failed.details), /401 Unauthorized/);
    assert.ok(logLines(daemonLog()).some((l) => l.credentials === 'none' && l.image === images.estargzRef), 'lazysnap logs that the pull carried no credentials');
  });

  it('a layer lazysnap has no credentials for (pulled past it, straight from containerd) is downloaded, and its log says why', async () => {
    const direct = new CriImageClient(containerd.socket);
    try {
      await direct.pullImage(otherRef, { auth: { username: USER, password: PASSWORD } });
    } finally {
      direct.close();
    }
    assert.ok((await contentDigests()).includes(otherLayer), 'containerd downloaded the layer itself');
    const why = logLines(daemonLog()).find((l) => l.ref === otherRef && l.layer === otherLayer && /will be downloaded/.test(String(l.msg)));
    assert.ok(why, `lazysnap logs why ${otherLayer} is not remote`);
    assert.match(JSON.stringify(why.err), /needs authentication \(no credentials for its challenge\)/);
  });

  it('with kubelet\'s credentials the layers are mounted lazily, never downloaded whole, and a container reads the right bytes', async () => {
    const registryLogBefore = registry.readLog().length;
    const contentBefore = new Set(await contentDigests());
    const cri = new CriImageClient(daemon.socket);
    try {
      const imageRef = await cri.pullImage(images.estargzRef, { auth: { username: USER, password: PASSWORD, serverAddress: `http://${registry.host}` } });
      assert.match(imageRef, /^sha256:/);
      assert.equal(await cri.imageStatus(images.estargzRef), imageRef, 'ImageStatus through lazysnap answers as containerd');
    } finally {
      cri.close();
    }
    const layers = new Set((await (async () => {
      const client = new RegistryClient({ credentials: { lookup: async () => ({ username: USER, password: PASSWORD }) } });
      try {
        return (await client.resolve(images.estargzRef)).manifest.layers.map((l) => l.digest);
      } finally {
        await client.close();
      }
    })()));
    // The top layer is also the other image's, which containerd downloaded in the test before.
    const downloaded = (await contentDigests()).filter((d) => !contentBefore.has(d));
    for (const digest of layers) assert.ok(!downloaded.includes(digest), `CRI downloaded layer ${digest}`);
    const remote = (await daemon.client.list()).filter((i) => i.kind === 3 && i.labels[REMOTE_SNAPSHOT]);
    assert.equal(remote.length, 3, 'every layer committed as a remote snapshot');
    const fuseMounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(' fuse.estargz ') && l.includes(join(daemon.root, 'layers')));
    assert.ok(fuseMounts.length >= 3, `FUSE mounts of the lazy layers: ${fuseMounts.length}`);

    const out = await containerd.ctr(['--namespace', 'k8s.io', 'run', '--rm', '--snapshotter', 'lazysnap', images.estargzRef, 'keychain-read', ...checksumCommand(images.expected)]);
    assert.deepEqual(assertChecksums(out, images.expected), []);
    const gets = blobRequests(registry.readLog().slice(registryLogBefore)).filter((r) => r.method === 'GET' && layers.has(r.digest));
    assert.ok(gets.some((r) => r.status === 206), 'lazysnap read layer ranges with the credentials');
    assert.deepEqual(gets.filter((r) => r.status === 200), [], 'a layer blob was fetched whole');

    const log = daemonLog();
    assert.ok(logLines(log).some((l) => l.credentials === 'kept' && l.image === images.estargzRef));
    assert.ok(!log.includes(PASSWORD), 'the password is in lazysnap\'s log');
    assert.ok(!log.includes(Buffer.from(`${USER}:${PASSWORD}`).toString('base64')), 'the basic credentials are in lazysnap\'s log');
  });
});
