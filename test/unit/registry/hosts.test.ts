// containerd's registry host configuration (certs.d/HOST/hosts.toml): the
// parser, the directory lookup, and the order in which the client tries
// mirrors and the registry, against fake registries on loopback.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  HostsConfigError,
  HostsDirectory,
  MediaType,
  NotFoundError,
  RegistryClient,
  digestOf,
  hostDirectoryCandidates,
  parseHostsFile,
  proxySettingsFromEnv,
} from '../../../src/registry/index.js';
import { FakeServer, oneLayerManifest, sendError } from './fake-server.js';

const blob = Buffer.from(Array.from({ length: 4000 }, (_, i) => i % 253));
const blobDigest = digestOf(blob);
const manifestRaw = oneLayerManifest(blob, blobDigest);

/** A registry serving one manifest (tag `t`) and one blob under `apiRoot`; `missing` makes it a mirror that has nothing. */
function registryHandler(apiRoot = '/v2', missing = false) {
  return (req: { url?: string; headers: Record<string, unknown> }, res: import('node:http').ServerResponse) => {
    const path = (req.url ?? '').split('?')[0]!;
    if (missing) return sendError(res, 404, 'BLOB_UNKNOWN', 'not here');
    if (path === `${apiRoot}/repo/manifests/t`) {
      res.writeHead(200, { 'content-type': MediaType.DockerManifest, 'content-length': String(manifestRaw.length), 'docker-content-digest': digestOf(manifestRaw) });
      return res.end(manifestRaw);
    }
    if (path === `${apiRoot}/repo/blobs/${blobDigest}`) {
      const m = /bytes=(\d+)-(\d+)/.exec(String(req.headers.range ?? ''));
      if (!m) {
        res.writeHead(200, { 'content-length': String(blob.length) });
        return res.end(blob);
      }
      const [start, end] = [Number(m[1]), Number(m[2])];
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${blob.length}`, 'content-length': String(end - start + 1) });
      return res.end(blob.subarray(start, end + 1));
    }
    return sendError(res, 404, 'NAME_UNKNOWN', path);
  };
}

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lazysnap-hosts-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function fakeRegistry(apiRoot = '/v2', missing = false): Promise<FakeServer> {
  const server = await FakeServer.start(registryHandler(apiRoot, missing));
  cleanups.push(() => server.close());
  return server;
}

function client(hostsDir: string, extra: ConstructorParameters<typeof RegistryClient>[0] = {}): RegistryClient {
  const c = new RegistryClient({ hostsDir, retry: { baseDelayMs: 1, maxDelayMs: 5, maxAttempts: 2 }, ...extra });
  cleanups.push(() => c.close());
  return c;
}

function writeHosts(root: string, dirName: string, text: string): string {
  mkdirSync(join(root, dirName), { recursive: true });
  const file = join(root, dirName, 'hosts.toml');
  writeFileSync(file, text);
  return file;
}

describe('hosts.toml parsing (containerd semantics)', () => {
  it('lists [host] entries in the order written, then server; capabilities default to all three', () => {
    const parsed = parseHostsFile(
      [
        'server = "https://registry.example.com"',
        '[host."https://b.mirror:5000"]',
        '  capabilities = ["pull"]',
        '[host."a.mirror"]',
        '  capabilities = ["pull", "resolve"]',
      ].join('\n'),
      '/etc/containerd/certs.d/registry.example.com',
    );
    assert.deepEqual(parsed.hosts.map((h) => h.location && `${h.location.scheme}//${h.location.host}${h.location.apiRoot}`), [
      'https://b.mirror:5000/v2',
      'https://a.mirror/v2',
      'https://registry.example.com/v2',
    ]);
    assert.deepEqual(parsed.hosts.map((h) => [...h.capabilities].sort()), [['pull'], ['pull', 'resolve'], ['pull', 'push', 'resolve']]);
  });

  it('appends /v2 to a path unless override_path; a file without server leaves the registry to its name', () => {
    const parsed = parseHostsFile(
      ['[host."http://m1/cache"]', '[host."http://m2/custom/api"]', '  override_path = true', '[host."http://m3/v2"]'].join('\n'),
      '/d',
    );
    assert.deepEqual(parsed.hosts.map((h) => h.location?.apiRoot), ['/cache/v2', '/custom/api', '/v2', undefined]);
    assert.equal(parsed.hosts[0]!.location!.scheme, 'http:');
  });

  it('resolves ca and client files against the file\'s directory, in all of containerd\'s forms', () => {
    const parsed = parseHostsFile(
      [
        'ca = "ca.crt"',
        'client = [["client.cert", "/abs/client.key"], "combined.pem"]',
        'skip_verify = true',
        '[host."https://m"]',
        '  ca = ["/x/a.pem", "b.pem"]',
        '  client = "both.pem"',
        '  [host."https://m".header]',
        '    x-one = "1"',
        '    x-many = ["a", "b"]',
      ].join('\n'),
      '/etc/certs.d/reg',
    );
    const [mirror, server] = parsed.hosts;
    assert.deepEqual(mirror!.caFiles, ['/x/a.pem', '/etc/certs.d/reg/b.pem']);
    assert.deepEqual(mirror!.clientCertificates, [{ cert: '/etc/certs.d/reg/both.pem' }]);
    assert.deepEqual(mirror!.headers, { 'x-one': ['1'], 'x-many': ['a', 'b'] });
    assert.deepEqual(server!.caFiles, ['/etc/certs.d/reg/ca.crt']);
    assert.deepEqual(server!.clientCertificates, [{ cert: '/etc/certs.d/reg/client.cert', key: '/abs/client.key' }, { cert: '/etc/certs.d/reg/combined.pem' }]);
    assert.equal(server!.skipVerify, true);
    assert.equal(mirror!.skipVerify, false);
  });

  it('refuses what containerd refuses, and keeps unknown keys aside', () => {
    assert.throws(() => parseHostsFile('[host."m"]\ncapabilities = ["fetch"]', '/d'), /unknown capability "fetch"/);
    assert.throws(() => parseHostsFile('server = [', '/d'), /invalid TOML/);
    assert.throws(() => parseHostsFile('client = [["only-one"]]', '/d'), /\[cert, key\] pair/);
    assert.deepEqual(parseHostsFile('dial_timeout = "1s"\nserver = "r"', '/d').ignoredKeys, ['dial_timeout']);
  });
});

describe('hosts directory lookup', () => {
  it('tries HOST_PORT_, then HOST:PORT, then _default, as containerd does', async () => {
    assert.deepEqual(hostDirectoryCandidates('/c', 'reg:5000'), ['/c/reg_5000_', '/c/reg:5000', '/c/_default']);
    assert.deepEqual(hostDirectoryCandidates('/c', 'docker.io'), ['/c/docker.io', '/c/_default']);
    const root = tempDir();
    writeHosts(root, '_default', 'server = "https://default.example"');
    writeHosts(root, 'reg:5000', 'server = "https://colon.example"');
    const dir = new HostsDirectory(root);
    assert.equal((await dir.lookup('reg:5000'))!.hosts[0]!.location!.host, 'colon.example');
    assert.equal((await dir.lookup('other.example'))!.hosts[0]!.location!.host, 'default.example');
    writeHosts(root, 'reg_5000_', 'server = "https://underscore.example"');
    assert.equal((await new HostsDirectory(root).lookup('reg:5000'))!.hosts[0]!.location!.host, 'underscore.example');
    assert.equal(await new HostsDirectory(join(root, 'absent')).lookup('reg:5000'), undefined);
  });

  it('without hosts.toml, takes Docker\'s certificate files from the directory', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'reg.example'));
    for (const f of ['ca.crt', 'me.cert', 'me.key']) writeFileSync(join(root, 'reg.example', f), '');
    const config = await new HostsDirectory(root).lookup('reg.example');
    assert.deepEqual(config!.hosts[0]!.caFiles, [join(root, 'reg.example', 'ca.crt')]);
    assert.deepEqual(config!.hosts[0]!.clientCertificates, [{ cert: join(root, 'reg.example', 'me.cert'), key: join(root, 'reg.example', 'me.key') }]);
  });
});

describe('requests through the host configuration', () => {
  it('resolves only on hosts with resolve; blob ranges go to the first pull host that has the blob', async () => {
    const origin = await fakeRegistry();
    const pullOnlyMirror = await fakeRegistry();
    const emptyMirror = await fakeRegistry('/v2', true);
    const root = tempDir();
    writeHosts(
      root,
      origin.host,
      [
        `server = "http://${origin.host}"`,
        `[host."http://${emptyMirror.host}"]`,
        '  capabilities = ["pull", "resolve"]',
        `[host."http://${pullOnlyMirror.host}"]`,
        '  capabilities = ["pull"]',
      ].join('\n'),
    );
    const c = client(root);
    const ref = `${origin.host}/repo:t`;
    await c.getManifest(ref);
    assert.equal(emptyMirror.requestsTo('/v2/repo/manifests/').length, 1, 'the resolve-capable mirror was asked first');
    assert.equal(pullOnlyMirror.requestsTo('/v2/repo/manifests/').length, 0, 'a pull-only mirror must not resolve tags');
    assert.equal(origin.requestsTo('/v2/repo/manifests/').length, 1);

    const bytes = await c.readRange(ref, blobDigest, 100, 50);
    assert.deepEqual(bytes, blob.subarray(100, 150));
    assert.equal(emptyMirror.requestsTo(`/v2/repo/blobs/${blobDigest}`).length, 1, 'the mirror without the blob answered 404 once, no retries');
    assert.equal(pullOnlyMirror.requestsTo(`/v2/repo/blobs/${blobDigest}`).length, 1);
    assert.equal(origin.requestsTo('/v2/repo/blobs/').length, 0, 'the origin is not asked when a mirror served the range');
  });

  it('a mirror that refuses connections falls through to the registry; all failing names the registry host', async () => {
    const origin = await fakeRegistry();
    const closedPort = await unusedPort();
    const root = tempDir();
    writeHosts(root, origin.host, [`[host."http://127.0.0.1:${closedPort}"]`, `[host."http://${origin.host}"]`].join('\n'));
    const c = client(root);
    assert.deepEqual(await c.readRange(`${origin.host}/repo:t`, blobDigest, 0, 10), blob.subarray(0, 10));
    const err = await c.readRange(`${origin.host}/repo:t`, `sha256:${'0'.repeat(64)}`, 0, 10).catch((e: unknown) => e);
    assert.ok(err instanceof NotFoundError);
    assert.equal(err.host, origin.host);
  });

  it('applies override_path and the configured headers', async () => {
    const mirror = await fakeRegistry('/custom/api');
    const root = tempDir();
    writeHosts(
      root,
      'registry.invalid',
      [`server = "http://${mirror.host}/custom/api"`, 'override_path = true', '[header]', '  x-mirror-token = "s3cret"', '  x-multi = ["a", "b"]'].join('\n'),
    );
    const c = client(root);
    await c.getManifest('registry.invalid/repo:t');
    const [req] = mirror.requestsTo('/custom/api/repo/manifests/t');
    assert.ok(req, 'request went to the overridden path');
    assert.equal(req.headers['x-mirror-token'], 's3cret');
    assert.equal(req.headers['x-multi'], 'a, b');
  });

  it('a scheme written in hosts.toml wins over plain HTTP for loopback', async () => {
    const origin = await fakeRegistry();
    const root = tempDir();
    writeHosts(root, origin.host, `server = "https://${origin.host}"`);
    const err = await client(root).getManifest(`${origin.host}/repo:t`).catch((e: unknown) => e);
    assert.match(String(err), /TLS with 127\.0\.0\.1:\d+ failed/);
    assert.equal(origin.requests.length, 0, 'no plain-HTTP request was made');
  });

  it('a malformed hosts.toml is a HostsConfigError naming the file, for that registry only', async () => {
    const good = await fakeRegistry();
    const root = tempDir();
    const bad = writeHosts(root, 'broken.example', 'server = "https://x"\n[host."m"\n');
    const c = client(root);
    const err = await c.getManifest('broken.example/repo:t').catch((e: unknown) => e);
    assert.ok(err instanceof HostsConfigError, String(err));
    assert.equal(err.file, bad);
    assert.match(err.message, /broken\.example/);
    await c.getManifest(`${good.host}/repo:t`);
  });

  it('a missing CA file is a HostsConfigError naming it', async () => {
    const root = tempDir();
    writeHosts(root, 'tls.example', 'ca = "nope.crt"');
    const err = await client(root).getManifest('tls.example/repo:t').catch((e: unknown) => e);
    assert.ok(err instanceof HostsConfigError, String(err));
    assert.equal(err.file, join(root, 'tls.example', 'nope.crt'));
    assert.match(err.message, /does not exist/);
  });
});

describe('proxies from the environment', () => {
  it('reads HTTP_PROXY/HTTPS_PROXY/NO_PROXY, lower case first', () => {
    assert.deepEqual(proxySettingsFromEnv({ HTTPS_PROXY: 'http://p:3128', https_proxy: 'http://lower:3128', NO_PROXY: 'a,b' }), {
      httpsProxy: 'http://lower:3128',
      noProxy: 'a,b',
    });
    assert.deepEqual(proxySettingsFromEnv({ HTTP_PROXY: '' }), {});
  });

  it('sends registry requests through the proxy, except for NO_PROXY hosts', async () => {
    const origin = await fakeRegistry();
    const proxy = await connectProxy();
    const root = tempDir();
    const viaProxy = client(root, { proxy: { httpProxy: proxy.url } });
    await viaProxy.getManifest(`${origin.host}/repo:t`);
    assert.deepEqual(proxy.tunnels, [origin.host]);
    const bypass = client(root, { proxy: { httpProxy: proxy.url, noProxy: `example.com,127.0.0.1` } });
    await bypass.getManifest(`${origin.host}/repo:t`);
    assert.deepEqual(proxy.tunnels, [origin.host], 'a NO_PROXY host is reached directly');
    assert.equal(origin.requestsTo('/v2/repo/manifests/t').length, 2);
  });
});

async function unusedPort(): Promise<number> {
  const server = createHttpServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  return typeof addr === 'object' && addr ? addr.port : 0;
}

/** A minimal CONNECT proxy recording the targets it tunnels to. */
async function connectProxy(): Promise<{ url: string; tunnels: string[] }> {
  const tunnels: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createHttpServer((_req, res) => res.writeHead(405).end());
  server.on('connect', (req, client: Socket, head: Buffer) => {
    const target = req.url ?? '';
    tunnels.push(target);
    const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
    const upstream = connect(port, host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const addr = server.address();
  return { url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`, tunnels };
}
