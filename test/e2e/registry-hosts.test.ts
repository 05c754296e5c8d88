// Registries as operators run them, through containerd's own host
// configuration (certs.d/HOST/hosts.toml), end to end with real parts on
// loopback: a TLS registry with a private CA, one that requires client
// certificates, a pull-through-cache mirror of a plain registry, and host
// configurations that are broken. One origin registry holds the images; the
// TLS registries serve the same storage, so the images are pushed once.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../harness/daemon.js';
import { startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';
import { assertChecksums, checksumCommand, pushTestImages, type TestImages } from '../harness/estargz-image.js';
import { lazysnapCli, lazysnapCliOutcome } from '../harness/lazysnap-cli.js';
import { makeTempDir, removeTree } from '../harness/process.js';
import { makeTestPki, type TestPki } from '../harness/tls.js';
import { RegistryClient, type Descriptor } from '../../src/registry/index.js';
import { REMOTE_SNAPSHOT, REMOTE_SNAPSHOT_DIGEST, REMOTE_SNAPSHOT_REF, STARGZ_TOC_DIGEST } from '../../src/containerd/labels.js';

let work: string;
let pki: TestPki;
let origin: RegistryInstance;
let tlsRegistry: RegistryInstance;
let mtlsRegistry: RegistryInstance;
let mirror: RegistryInstance;
let containerd: ContainerdInstance;
let daemon: DaemonInstance | undefined;
let images: TestImages;
let layers: Descriptor[];
const repo = 'lazysnap/hosts:esgz';

before(async () => {
  work = makeTempDir('e2e-hosts');
  pki = makeTestPki(join(work, 'pki'));
  origin = await startRegistry(work, { name: 'origin' });
  images = await pushTestImages(work, origin.host, 'hosts');
  const storage = join(work, 'origin-storage');
  tlsRegistry = await startRegistry(work, { name: 'tls', storage, tls: { cert: pki.serverCert, key: pki.serverKey } });
  mtlsRegistry = await startRegistry(work, { name: 'mtls', storage, tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert } });
  mirror = await startRegistry(work, { name: 'mirror', proxyRemoteUrl: origin.url });
  const plain = new RegistryClient();
  try {
    layers = (await plain.resolve(images.estargzRef)).manifest.layers;
  } finally {
    await plain.close();
  }
  containerd = await startContainerd(work, { lazysnapSocket: join(work, 'lazysnap', 'lazysnap.sock') });
});

after(async () => {
  await containerd?.stop();
  await daemon?.stop();
  for (const r of [mirror, mtlsRegistry, tlsRegistry, origin]) await r?.stop();
  removeTree(work);
});

/** A hosts directory (`certs.d`) with one hosts.toml per registry host, and a lazysnap config pointing at it. */
function hostsConfig(name: string, files: Record<string, string>): { dir: string; config: string } {
  const dir = join(work, 'certs.d', name);
  for (const [host, text] of Object.entries(files)) {
    mkdirSync(join(dir, host), { recursive: true });
    writeFileSync(join(dir, host, 'hosts.toml'), `${text}\n`);
  }
  mkdirSync(dir, { recursive: true });
  const config = join(work, `lazysnap-${name}.toml`);
  writeFileSync(config, `[registry]\nconfig_path = "${dir}"\n`);
  return { dir, config };
}

/** A daemon with nothing mounted or cached, so every layer byte it serves is fetched anew. */
async function freshDaemon(config: string): Promise<DaemonInstance> {
  await daemon?.stop();
  removeTree(join(work, 'lazysnap', 'root'));
  daemon = await startDaemon(join(work, 'lazysnap'), ['--config', config]);
  return daemon;
}

function pull(ns: string, ref: string, config: string): Promise<{ stdout: string }> {
  return lazysnapCli(['pull', '--address', containerd.socket, '--namespace', ns, '--remote-snapshot', '--config', config, ref]);
}

async function readsRightBytes(ns: string, ref: string): Promise<void> {
  const out = await containerd.ctr(['--namespace', ns, 'run', '--rm', '--snapshotter', 'lazysnap', ref, `read-${ns}`, ...checksumCommand(images.expected)]);
  assert.deepEqual(assertChecksums(out, images.expected), []);
}

function lazyMounts(): number {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => daemon && l.includes(join(daemon.root, 'layers'))).length;
}

async function contentDigests(ns: string): Promise<string[]> {
  return (await containerd.ctr(['--namespace', ns, 'content', 'ls', '-q']).catch(() => '')).split('\n').filter(Boolean);
}

interface AccessLine {
  method: string;
  path: string;
  status: number;
  userAgent: string;
}

/** docker-registry's combined access log, from `from` (a length of the log read earlier) on. */
function accessLog(registry: RegistryInstance, from = 0): AccessLine[] {
  const out: AccessLine[] = [];
  for (const line of registry.readLog().slice(from).split('\n')) {
    const m = /"(GET|HEAD) (\/v2\/[^ ]*) HTTP\/[0-9.]+" (\d{3}) \S+ "[^"]*" "([^"]*)"/.exec(line);
    if (m) out.push({ method: m[1]!, path: m[2]!, status: Number(m[3]), userAgent: m[4]! });
  }
  return out;
}

/** What lazysnap (daemon and CLI, by their user agent) asked a registry for. */
function lazysnapRequests(registry: RegistryInstance, from = 0): AccessLine[] {
  return accessLog(registry, from).filter((l) => l.userAgent.startsWith('lazysnap/'));
}

function layerGets(lines: AccessLine[]): AccessLine[] {
  const digests = layers.map((l) => l.digest);
  return lines.filter((l) => l.method === 'GET' && digests.some((d) => l.path.endsWith(`/blobs/${d}`)));
}

describe('a TLS registry with a private CA', () => {
  it('with the CA in hosts.toml, the image is pulled lazily over TLS and reads the right bytes', async () => {
    const { config } = hostsConfig('tls-ca', { [tlsRegistry.host]: [`server = "https://${tlsRegistry.host}"`, `ca = "${pki.caCert}"`].join('\n') });
    await freshDaemon(config);
    const ref = `${tlsRegistry.host}/${repo}`;
    const { stdout } = await pull('tls', ref, config);
    assert.match(stdout, /3 layers: 3 remote, 0 downloaded/);
    assert.equal(lazyMounts(), 3, 'three layers mounted over FUSE');
    await readsRightBytes('tls', ref);
    const gets = layerGets(lazysnapRequests(tlsRegistry));
    assert.ok(gets.length >= 3, 'layer ranges were fetched over TLS');
    assert.deepEqual(gets.filter((g) => g.status !== 206), [], 'no layer blob was fetched whole');
  });

  it('without the CA, the pull fails with a TLS error naming the host, and nothing is downloaded', async () => {
    const { config } = hostsConfig('tls-no-ca', { [tlsRegistry.host]: `server = "https://${tlsRegistry.host}"` });
    const outcome = await lazysnapCliOutcome(['pull', '--address', containerd.socket, '--namespace', 'tls-no-ca', '--remote-snapshot', '--config', config, `${tlsRegistry.host}/${repo}`]);
    assert.notEqual(outcome.code, 0);
    assert.match(outcome.stderr, new RegExp(`TLS with ${tlsRegistry.host.replace(/\./g, '\\.')} failed: certificate signed by unknown authority`));
    const content = await contentDigests('tls-no-ca');
    for (const layer of layers) assert.ok(!content.includes(layer.digest), 'no layer was downloaded instead');
  });
});

describe('a registry that requires client certificates', () => {
  it('works with client = [[cert, key]], lazily', async () => {
    const { config } = hostsConfig('mtls', {
      [mtlsRegistry.host]: [`server = "https://${mtlsRegistry.host}"`, `ca = "${pki.caCert}"`, `client = [["${pki.clientCert}", "${pki.clientKey}"]]`].join('\n'),
    });
    await freshDaemon(config);
    const ref = `${mtlsRegistry.host}/${repo}`;
    const { stdout } = await pull('mtls', ref, config);
    assert.match(stdout, /3 layers: 3 remote, 0 downloaded/);
    await readsRightBytes('mtls', ref);
    assert.deepEqual(layerGets(lazysnapRequests(mtlsRegistry)).filter((g) => g.status !== 206), []);
  });

  it('is refused without a client certificate, naming the host', async () => {
    const { config } = hostsConfig('mtls-no-client', { [mtlsRegistry.host]: [`server = "https://${mtlsRegistry.host}"`, `ca = "${pki.caCert}"`].join('\n') });
    const outcome = await lazysnapCliOutcome(['pull', '--address', containerd.socket, '--namespace', 'mtls-no-client', '--remote-snapshot', '--config', config, `${mtlsRegistry.host}/${repo}`]);
    assert.notEqual(outcome.code, 0);
    assert.match(outcome.stderr, new RegExp(`${mtlsRegistry.host.replace(/\./g, '\\.')}`));
    assert.match(outcome.stderr, /requires a client certificate/);
  });
});

describe('a pull-through-cache mirror', () => {
  let config: string;

  it('serves the manifest and every layer range; the origin sees no request from lazysnap', async () => {
    config = hostsConfig('mirror', {
      [origin.host]: [`server = "http://${origin.host}"`, `[host."http://${mirror.host}"]`, '  capabilities = ["pull", "resolve"]'].join('\n'),
    }).config;
    await freshDaemon(config);
    const mark = origin.readLog().length;
    const ref = `${origin.host}/${repo}`;
    const { stdout } = await pull('mirror', ref, config);
    assert.match(stdout, /3 layers: 3 remote, 0 downloaded/);
    await readsRightBytes('mirror', ref);
    assert.deepEqual(lazysnapRequests(origin, mark), [], 'lazysnap asked the origin directly');
    const viaMirror = lazysnapRequests(mirror);
    assert.ok(viaMirror.some((l) => l.path.includes('/manifests/esgz')), 'the manifest came through the mirror');
    const gets = layerGets(viaMirror);
    for (const layer of layers) assert.ok(gets.some((g) => g.path.endsWith(layer.digest)), `layer ${layer.digest} was read through the mirror`);
  });

  it('falls back to the origin when the mirror is down, still lazily', async () => {
    await mirror.stop();
    await freshDaemon(config);
    const mark = origin.readLog().length;
    const ref = `${origin.host}/${repo}`;
    const { stdout } = await pull('mirror-down', ref, config);
    assert.match(stdout, /3 layers: 3 remote, 0 downloaded/);
    await readsRightBytes('mirror-down', ref);
    const gets = layerGets(lazysnapRequests(origin, mark));
    assert.ok(gets.length >= 3, 'the layers were read from the origin');
    assert.deepEqual(gets.filter((g) => g.status !== 206), [], 'no layer blob was fetched whole');
    assert.match(readFileSync(daemon!.process.logPath, 'utf8'), /registry host failed, trying the next one/);
  });
});

describe('broken host configurations', () => {
  it('a malformed hosts.toml, a missing CA file and a key not matching its cert are reported naming the file; other registries keep working', async () => {
    const stray = `client = [["${pki.clientCert}", "${pki.strayKey}"]]`;
    const { dir, config } = hostsConfig('broken', {
      [tlsRegistry.host]: `server = "https://${tlsRegistry.host}"\n[host."https://x"\n`,
      [mtlsRegistry.host]: [`server = "https://${mtlsRegistry.host}"`, 'ca = "missing-ca.crt"'].join('\n'),
      [`localhost:${mtlsRegistry.host.split(':')[1]}`]: [`server = "https://localhost:${mtlsRegistry.host.split(':')[1]}"`, `ca = "${pki.caCert}"`, stray].join('\n'),
    });
    await freshDaemon(config);
    const cases = [
      { ref: `${tlsRegistry.host}/${repo}`, file: join(dir, tlsRegistry.host, 'hosts.toml') },
      { ref: `${mtlsRegistry.host}/${repo}`, file: join(dir, mtlsRegistry.host, 'missing-ca.crt') },
      { ref: `localhost:${mtlsRegistry.host.split(':')[1]}/${repo}`, file: pki.strayKey },
    ];
    const layer = layers[0]!;
    const toc = layer.annotations?.[STARGZ_TOC_DIGEST];
    assert.ok(toc, 'the test image carries TOC digests');
    for (const [i, c] of cases.entries()) {
      const key = `remote-broken-${i}`;
      await daemon!.client.prepare(key, '', { [REMOTE_SNAPSHOT_REF]: c.ref, [REMOTE_SNAPSHOT_DIGEST]: layer.digest, [STARGZ_TOC_DIGEST]: toc });
      assert.equal((await daemon!.client.stat(key)).labels[REMOTE_SNAPSHOT], undefined, `${c.ref} must not be served remotely`);
      await daemon!.client.remove(key);
      const log = readFileSync(daemon!.process.logPath, 'utf8');
      assert.ok(log.includes(c.file), `the daemon log names ${c.file}`);
    }
    assert.match(readFileSync(daemon!.process.logPath, 'utf8'), /key does not match certificate/);
    // The same daemon still serves a registry whose configuration is fine.
    const key = 'remote-good';
    await daemon!.client.prepare(key, '', { [REMOTE_SNAPSHOT_REF]: images.estargzRef, [REMOTE_SNAPSHOT_DIGEST]: layer.digest, [STARGZ_TOC_DIGEST]: toc });
    assert.ok((await daemon!.client.stat(key)).labels[REMOTE_SNAPSHOT], 'a well-configured registry is still served lazily');
    await daemon!.client.remove(key);
  });
});
