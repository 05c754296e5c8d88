// Attacks on lazily served layers, end to end with real containerd, a real
// registry and FUSE:
//  - cross-image layer poisoning: an attacker's registry serves its own eStargz
//    blob under the digest of a victim's layer, with a TOC digest annotation
//    valid for its own TOC. Pulled first, it must not become the victim's layer;
//    once fully fetched it is found not to hash to that digest: its reads fail
//    with EIO, it is counted, and it is not handed to new snapshots;
//  - setuid escape: with ROOT an operator's 0755 directory, an unprivileged
//    user can neither list nor execute anything that holds image content.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { startDaemon, type DaemonInstance } from '../harness/daemon.js';
import { startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';
import { startHostileRegistry, type HostileRegistry } from '../harness/hostile-registry.js';
import { assertChecksums, checksumCommand, pushTestImages, type TestImages } from '../harness/estargz-image.js';
import { lazysnapCli } from '../harness/lazysnap-cli.js';
import { freePort, makeTempDir, removeTree, waitUntil } from '../harness/process.js';
import { RegistryClient } from '../../src/registry/index.js';
import { writeEstargz, type EstargzBuildResult } from '../../src/estargz/index.js';
import { REMOTE_SNAPSHOT, REMOTE_SNAPSHOT_DIGEST, REMOTE_SNAPSHOT_REF, STARGZ_TOC_DIGEST } from '../../src/containerd/labels.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const NOBODY = ['--reuid', '65534', '--regid', '65534', '--clear-groups'];

let work: string;
let registry: RegistryInstance;
let hostile: HostileRegistry;
let daemon: DaemonInstance;
let containerd: ContainerdInstance;
let victim: TestImages;
let metricsUrl: string;
/** The victim layer the attacker serves its own blob under. */
let targetDigest: string;
let attackerRef: string;
let attackerToc: string;
const registryClient = new RegistryClient();

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** An eStargz blob of a directory's contents (GNU tar, then our writer). */
async function estargzOf(dir: string): Promise<{ blob: Buffer; result: EstargzBuildResult }> {
  const tar = execFileSync('tar', ['--numeric-owner', '--sort=name', '-C', dir, '-cf', '-', '.'], { maxBuffer: 256 << 20 });
  const parts: Buffer[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { parts.push(chunk); cb(); } });
  async function* input(): AsyncGenerator<Buffer> {
    yield tar;
  }
  const result = await writeEstargz(input(), sink, { compressionLevel: 1 });
  return { blob: Buffer.concat(parts), result };
}

function imageConfig(diffIds: string[]): Buffer {
  return Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds } }));
}

function manifestOf(config: Buffer, layers: object[]): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
    layers,
  }));
}

/** The attacker's image: one eStargz layer of its own, claimed to be the victim's top layer. */
async function startAttackerRegistry(): Promise<void> {
  const dir = join(work, 'attacker-layer');
  mkdirSync(join(dir, 'opt', 'data'), { recursive: true });
  writeFileSync(join(dir, 'opt', 'data', 'new.txt'), 'from-the-attacker\n');
  writeFileSync(join(dir, 'layer-2.txt'), 'from-the-attacker\n');
  const { blob, result } = await estargzOf(dir);
  attackerToc = result.tocDigest;
  const config = imageConfig([result.diffId]);
  const manifest = manifestOf(config, [{ mediaType: OCI_LAYER, digest: targetDigest, size: blob.length, annotations: { [STARGZ_TOC_DIGEST]: result.tocDigest } }]);
  hostile = await startHostileRegistry(
    [{ name: 'evil/app', tag: 'latest', manifest, manifestDigest: sha256(manifest), mediaType: OCI_MANIFEST }],
    new Map([[sha256(config), config], [targetDigest, blob]]),
  );
  attackerRef = `${hostile.host}/evil/app:latest`;
}

/** A one-layer eStargz image holding a setuid-root copy of `id`, pushed to the honest registry. */
async function pushSetuidImage(): Promise<string> {
  const dir = join(work, 'suid-layer');
  mkdirSync(join(dir, 'bin2'), { recursive: true });
  copyFileSync('/usr/bin/id', join(dir, 'bin2', 'suid-id'));
  chmodSync(join(dir, 'bin2', 'suid-id'), 0o4755);
  const { blob, result } = await estargzOf(dir);
  const ref = `${registry.host}/lazysnap/suid:esgz`;
  await registryClient.pushBlob(ref, blob);
  const config = imageConfig([result.diffId]);
  await registryClient.pushBlob(ref, config);
  const manifest = manifestOf(config, [{ mediaType: OCI_LAYER, digest: result.compressedDigest, size: blob.length, annotations: { [STARGZ_TOC_DIGEST]: result.tocDigest } }]);
  await registryClient.pushManifest(ref, manifest, { mediaType: OCI_MANIFEST });
  return ref;
}

async function poisonedCount(): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith('lazysnap_remote_layer_poisoned_total '));
  return line === undefined ? -1 : Number(line.split(' ')[1]);
}

/**
 * Runs a shell command as uid/gid 65534 with no groups. Through a shell: setpriv
 * itself still holds root's capabilities while it execs its argument (the path
 * lookup of a directly given program would succeed where no user's would).
 */
function asNobody(script: string): { status: number | null; output: string } {
  const run = spawnSync('setpriv', [...NOBODY, '/bin/sh', '-c', script], { encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

before(async () => {
  work = makeTempDir('e2e-remote-security');
  registry = await startRegistry(work);
  victim = await pushTestImages(work, registry.host, 'victim');
  targetDigest = (await registryClient.resolve(victim.estargzRef)).manifest.layers[2]!.digest;
  await startAttackerRegistry();
  const daemonDir = join(work, 'lazysnap');
  // An operator's pre-existing root, readable by all on a path all can walk (like /var/lib/lazysnap);
  // lazysnap creates everything inside.
  mkdirSync(join(daemonDir, 'root'), { recursive: true });
  for (const dir of [work, daemonDir, join(daemonDir, 'root')]) chmodSync(dir, 0o755);
  const metricsPort = await freePort();
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  daemon = await startDaemon(daemonDir, ['--metrics-address', `127.0.0.1:${metricsPort}`]);
  containerd = await startContainerd(work, { lazysnapSocket: daemon.socket });
});

after(async () => {
  await registryClient.close();
  await containerd?.stop();
  await daemon?.stop();
  await hostile?.stop();
  await registry?.stop();
  removeTree(work);
});

describe('cross-image layer poisoning', () => {
  it('an attacker\'s blob served under a victim layer\'s digest, pulled first, does not become the victim\'s layer', async () => {
    const attacker = await lazysnapCli(['pull', '--address', containerd.socket, '--namespace', containerd.namespace, '--remote-snapshot', attackerRef]);
    assert.match(attacker.stdout, /1 layers: 1 remote, 0 downloaded/);
    assert.ok(hostile.requests.some((r) => r.includes(targetDigest)), 'the attacker\'s blob was read');
    const pulled = await lazysnapCli(['pull', '--address', containerd.socket, '--namespace', containerd.namespace, '--remote-snapshot', victim.estargzRef]);
    assert.match(pulled.stdout, /3 layers: 3 remote, 0 downloaded/);
    const out = await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', victim.estargzRef, 'victim-read', ...checksumCommand(victim.expected)]);
    assert.deepEqual(assertChecksums(out, victim.expected), []);
    assert.doesNotMatch(out, /attacker/);
  });

  it('the attacker\'s blob, once fetched whole, does not hash to the digest: its reads fail with EIO, it is counted and not reused', async () => {
    await waitUntil('the attacker layer is found poisoned', async () => (await poisonedCount()) === 1, 120_000, 250);
    const layersDir = join(daemon.root, 'layers');
    const attackerDir = readdirSync(layersDir).find((name) => name === `${targetDigest.slice(7)}-toc-${attackerToc.slice(7)}`);
    assert.ok(attackerDir, `the attacker's layer has a mount of its own in ${readdirSync(layersDir).join(', ')}`);
    assert.throws(() => readFileSync(join(layersDir, attackerDir, 'opt', 'data', 'new.txt')), (err: NodeJS.ErrnoException) => err.code === 'EIO');
    // A new snapshot of that layer is not served remotely (it would be downloaded, and checked).
    const key = 'poisoned-again';
    await daemon.client.prepare(key, '', { [REMOTE_SNAPSHOT_REF]: attackerRef, [REMOTE_SNAPSHOT_DIGEST]: targetDigest });
    try {
      assert.equal((await daemon.client.stat(key)).labels[REMOTE_SNAPSHOT], undefined);
    } finally {
      await daemon.client.remove(key);
    }
    // The victim's own layer is still served and is not counted as poisoned.
    const out = await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', victim.estargzRef, 'victim-read-again', ...checksumCommand(victim.expected)]);
    assert.deepEqual(assertChecksums(out, victim.expected), []);
    assert.equal(await poisonedCount(), 1);
  });
});

describe('private layer directories', () => {
  it('an unprivileged user can neither list nor execute image content under ROOT, setuid binaries included', async () => {
    const ref = await pushSetuidImage();
    const pulled = await lazysnapCli(['pull', '--address', containerd.socket, '--namespace', containerd.namespace, '--remote-snapshot', ref]);
    assert.match(pulled.stdout, /1 layers: 1 remote, 0 downloaded/);
    const layersDir = join(daemon.root, 'layers');
    const suid = readdirSync(layersDir).map((name) => join(layersDir, name, 'bin2', 'suid-id')).filter((path) => {
      try {
        readFileSync(path);
        return true;
      } catch {
        return false;
      }
    });
    assert.equal(suid.length, 1, 'root sees the setuid binary in its lazy mount');
    assert.equal(asNobody('id -u').output.trim(), '65534', 'setpriv works');
    const root = asNobody(`ls '${daemon.root}'`);
    assert.equal(root.status, 0, `nobody can walk to ROOT and list it (else this test proves nothing): ${root.output}`);
    assert.match(root.output, /layers/);
    const executed = asNobody(`'${suid[0]!}'`);
    assert.notEqual(executed.status, 0, `nobody ran the setuid binary: ${executed.output}`);
    assert.doesNotMatch(executed.output, /euid=0/);
    const content = [layersDir, ...readdirSync(layersDir).map((name) => join(layersDir, name)), join(daemon.root, 'snapshots'), join(daemon.root, 'cache')];
    for (const path of content) {
      const listed = asNobody(`ls '${path}'`);
      assert.notEqual(listed.status, 0, `nobody could list ${path}: ${listed.output}`);
    }
  });
});
