// The client against Debian's real docker-registry (distribution v2): push
// images built here, read them back every way the client offers, and have
// skopeo check that what we pushed is valid for another tool.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import {
  MediaType,
  NoMatchingPlatformError,
  NotFoundError,
  RegistryClient,
  RegistryError,
  RegistryUnreachableError,
  digestOf,
} from '../../../src/registry/index.js';
import { makeTempDir, removeTree, waitUntil } from '../../harness/process.js';
import { startRegistry, type RegistryInstance } from '../../harness/registry.js';
import { buildImage, buildIndex, pseudoRandom, type BuiltImage } from './image-fixture.js';

const run = promisify(execFile);

let workDir: string;
let registry: RegistryInstance;
let client: RegistryClient;

const amd64 = buildImage({
  flavour: 'oci',
  architecture: 'amd64',
  layers: [
    [
      { name: 'etc/hostname', data: Buffer.from('lazysnap\n') },
      { name: 'bin/tool', data: pseudoRandom('tool-amd64', 300_000), mode: 0o755 },
    ],
    [{ name: 'data/big.bin', data: pseudoRandom('big', 700_000) }],
  ],
});
const arm64 = buildImage({
  flavour: 'oci',
  architecture: 'arm64',
  variant: 'v8',
  layers: [[{ name: 'bin/tool', data: pseudoRandom('tool-arm64', 200_000), mode: 0o755 }], [{ name: 'etc/os', data: Buffer.from('arm\n') }]],
});
const dockerAmd64 = buildImage({
  flavour: 'docker',
  architecture: 'amd64',
  layers: [[{ name: 'a.txt', data: Buffer.from('docker layer one\n') }], [{ name: 'b.bin', data: pseudoRandom('docker-b', 50_000) }]],
});
const dockerArm64 = buildImage({
  flavour: 'docker',
  architecture: 'arm64',
  layers: [[{ name: 'a.txt', data: Buffer.from('docker arm layer\n') }], [{ name: 'c.bin', data: pseudoRandom('docker-c', 40_000) }]],
});

async function pushImage(repo: string, image: BuiltImage, opts: { chunkSize?: number } = {}): Promise<void> {
  const ref = `${registry.host}/${repo}`;
  await client.pushBlob(ref, image.config.data);
  // First layer monolithic, second chunked (or as the caller says).
  await client.pushBlob(ref, image.layers[0]!.data);
  await client.pushBlob(ref, image.layers[1]!.data, { chunkSize: opts.chunkSize ?? 64 * 1024 });
}

/** The registry writes its access log asynchronously; wait for a line to show up. */
async function logLines(pattern: RegExp): Promise<string[]> {
  let found: string[] = [];
  await waitUntil(`registry log line ${pattern}`, () => {
    found = registry.readLog().split('\n').filter((l) => pattern.test(l));
    return found.length > 0;
  }, 5_000, 25);
  return found;
}

async function skopeo(args: string[]): Promise<string> {
  const { stdout } = await run('skopeo', args, { timeout: 60_000, maxBuffer: 16 << 20, env: { ...process.env, HOME: workDir } });
  return stdout;
}

before(async () => {
  workDir = makeTempDir('registry-it');
  registry = await startRegistry(workDir);
  client = new RegistryClient({ retry: { baseDelayMs: 20, maxDelayMs: 100, maxAttempts: 3 }, timeouts: { requestMs: 30_000 } });
});

after(async () => {
  await client?.close();
  await registry?.stop();
  if (workDir) removeTree(workDir);
});

describe('push and resolve against docker-registry', () => {
  it('pushes an OCI image (monolithic and chunked blobs) and a manifest by tag', async () => {
    await pushImage('lazysnap/oci', amd64, { chunkSize: 100 * 1024 });
    const desc = await client.pushManifest(`${registry.host}/lazysnap/oci:v1`, amd64.manifest);
    assert.deepEqual(desc, amd64.manifestDescriptor);

    // The second layer (~700 KB, incompressible) went up in 100 KiB PATCHes;
    // the first one in a single PUT. The manifest PUT is logged last.
    await logLines(/"PUT \/v2\/lazysnap\/oci\/manifests\/v1 /);
    const log = registry.readLog();
    const patches = log.split('\n').filter((l) => /"PATCH \/v2\/lazysnap\/oci\/blobs\/uploads\//.test(l));
    assert.equal(patches.length, Math.ceil(amd64.layers[1]!.data.length / (100 * 1024)));
    const puts = log.split('\n').filter((l) => /"PUT \/v2\/lazysnap\/oci\/blobs\/uploads\/[^ ]*digest=/.test(l));
    assert.equal(puts.length, 3);
  });

  it('skips blobs the repository already has', async () => {
    const again = await client.pushBlob(`${registry.host}/lazysnap/oci`, amd64.layers[0]!.data);
    assert.equal(again.how, 'existed');
    assert.equal(again.digest, amd64.layers[0]!.descriptor.digest);
    assert.equal(await client.blobExists(`${registry.host}/lazysnap/oci`, amd64.layers[0]!.descriptor.digest), true);
    assert.equal(await client.blobExists(`${registry.host}/lazysnap/oci`, digestOf(Buffer.from('absent'))), false);
  });

  it('resolves by tag and by digest with verified bytes', async () => {
    const byTag = await client.resolve(`${registry.host}/lazysnap/oci:v1`);
    assert.deepEqual(byTag.descriptor, amd64.manifestDescriptor);
    assert.deepEqual(byTag.root, amd64.manifestDescriptor);
    assert.deepEqual(byTag.raw, amd64.manifest);
    assert.equal(byTag.index, undefined);
    assert.deepEqual(byTag.manifest.layers, amd64.layers.map((l) => l.descriptor));

    const byDigest = await client.resolve(`${registry.host}/lazysnap/oci@${amd64.manifestDescriptor.digest}`);
    assert.deepEqual(byDigest.raw, amd64.manifest);
    const both = await client.getManifest(`${registry.host}/lazysnap/oci:v1@${amd64.manifestDescriptor.digest}`);
    assert.equal(both.descriptor.digest, amd64.manifestDescriptor.digest);
    assert.equal(both.ref.digest, amd64.manifestDescriptor.digest);

    const cfg = await client.getConfig(`${registry.host}/lazysnap/oci`, byTag.manifest);
    assert.deepEqual(cfg.raw, amd64.config.data);
    assert.equal(cfg.config.architecture, 'amd64');
    assert.deepEqual(cfg.config.rootfs?.diff_ids, amd64.layers.map((l) => l.diffId));
  });

  it('pushes and resolves Docker schema 2 media types', async () => {
    await pushImage('lazysnap/docker', dockerAmd64, { chunkSize: 8 * 1024 });
    const desc = await client.pushManifest(`${registry.host}/lazysnap/docker:v1`, dockerAmd64.manifest);
    assert.equal(desc.mediaType, MediaType.DockerManifest);
    const r = await client.resolve(`${registry.host}/lazysnap/docker:v1`);
    assert.equal(r.descriptor.mediaType, MediaType.DockerManifest);
    assert.deepEqual(r.raw, dockerAmd64.manifest);
    assert.equal(r.manifest.layers[0]!.mediaType, MediaType.DockerLayerGzip);
    const cfg = await client.getConfig(`${registry.host}/lazysnap/docker:v1`, r.manifest);
    assert.equal(cfg.descriptor.mediaType, MediaType.DockerConfig);
  });

  for (const flavour of ['oci', 'docker'] as const) {
    it(`resolves a two-platform ${flavour === 'oci' ? 'OCI index' : 'Docker manifest list'} per platform`, async () => {
      const repo = `lazysnap/multi-${flavour}`;
      const [a, b] = flavour === 'oci' ? [amd64, arm64] : [dockerAmd64, dockerArm64];
      for (const img of [a, b]) {
        await pushImage(repo, img);
        await client.pushManifest(`${registry.host}/${repo}`, img.manifest, { byDigest: true });
      }
      const indexRaw = buildIndex(flavour, [
        { image: a, platform: { os: 'linux', architecture: 'amd64' } },
        { image: b, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ]);
      const indexDesc = await client.pushManifest(`${registry.host}/${repo}:multi`, indexRaw);
      assert.equal(indexDesc.mediaType, flavour === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList);

      const def = await client.resolve(`${registry.host}/${repo}:multi`);
      assert.equal(def.platform.architecture, 'amd64');
      assert.equal(def.descriptor.digest, a.manifestDescriptor.digest);
      assert.deepEqual(def.descriptor.platform, { os: 'linux', architecture: 'amd64' });
      assert.deepEqual(def.raw, a.manifest);
      assert.deepEqual(def.root, indexDesc);
      assert.deepEqual(def.index?.raw, indexRaw);

      const arm = await client.resolve(`${registry.host}/${repo}:multi`, { platform: 'linux/arm64' });
      assert.equal(arm.descriptor.digest, b.manifestDescriptor.digest);
      assert.deepEqual(arm.raw, b.manifest);
      const armCfg = await client.getConfig(`${registry.host}/${repo}`, arm.manifest);
      assert.equal(armCfg.config.architecture, 'arm64');

      // A client configured for arm64 picks it by default, also by index digest.
      const armClient = new RegistryClient({ platform: 'linux/aarch64' });
      try {
        const viaDigest = await armClient.resolve(`${registry.host}/${repo}@${indexDesc.digest}`);
        assert.equal(viaDigest.descriptor.digest, b.manifestDescriptor.digest);
      } finally {
        await armClient.close();
      }

      await assert.rejects(client.resolve(`${registry.host}/${repo}:multi`, { platform: 'linux/s390x' }), (err: unknown) => {
        assert.ok(err instanceof NoMatchingPlatformError);
        assert.deepEqual(err.available, ['linux/amd64', 'linux/arm64']);
        assert.match(err.message, /linux\/s390x/);
        return true;
      });
    });
  }

  it('pushes blobs from streams, monolithic and chunked', async () => {
    const data = pseudoRandom('streamed', 150_000);
    const digest = digestOf(data);
    const pieces = (): Readable => Readable.from([data.subarray(0, 1000), data.subarray(1000, 70_000), data.subarray(70_000)]);
    const mono = await client.pushBlob(`${registry.host}/lazysnap/stream-a`, { stream: pieces(), size: data.length, digest });
    assert.equal(mono.how, 'uploaded');
    const chunked = await client.pushBlob(`${registry.host}/lazysnap/stream-b`, { stream: pieces(), size: data.length, digest }, { chunkSize: 32 * 1024 });
    assert.equal(chunked.how, 'uploaded');
    for (const repo of ['stream-a', 'stream-b']) {
      assert.deepEqual(await client.fetchBlob(`${registry.host}/lazysnap/${repo}`, digest), data);
    }
  });

  it('refuses to push bytes that do not match a stated digest', async () => {
    await assert.rejects(
      client.pushBlob(`${registry.host}/lazysnap/oci`, Buffer.from('x'), { digest: digestOf(Buffer.from('y')) }),
      /does not match its stated digest/,
    );
  });

  it('reports a missing tag as NotFoundError with the registry code', async () => {
    await assert.rejects(client.resolve(`${registry.host}/lazysnap/oci:nope`), (err: unknown) => {
      assert.ok(err instanceof NotFoundError);
      assert.equal(err.status, 404);
      assert.equal(err.code, 'MANIFEST_UNKNOWN');
      assert.match(err.message, /lazysnap\/oci:nope/);
      return true;
    });
  });
});

describe('blob reads against docker-registry', () => {
  const layer = amd64.layers[1]!;
  const ref = (): string => `${registry.host}/lazysnap/oci`;

  it('range reads return the exact bytes at several offsets, including the last byte', async () => {
    const size = layer.data.length;
    const windows: Array<[number, number]> = [
      [0, 1],
      [0, 512],
      [1, 10],
      [4096, 65536],
      [size - 1000, 1000],
      [size - 1, 1],
      [Math.floor(size / 2), Math.floor(size / 3)],
      [0, size],
    ];
    for (const [off, len] of windows) {
      const got = await client.readRange(ref(), layer.descriptor.digest, off, len);
      assert.equal(got.length, len);
      assert.ok(got.equals(layer.data.subarray(off, off + len)), `bytes ${off}+${len}`);
    }
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => client.readRange(ref(), layer.descriptor.digest, i * 50_000, 4_000)),
    );
    results.forEach((got, i) => assert.ok(got.equals(layer.data.subarray(i * 50_000, i * 50_000 + 4_000))));
  });

  it('range reads past the end fail without retries', async () => {
    const size = layer.data.length;
    await assert.rejects(client.readRange(ref(), layer.descriptor.digest, size - 1, 2), (err: unknown) => err instanceof RegistryError && err.code === 'RANGE_NOT_SATISFIABLE');
    await assert.rejects(client.readRange(ref(), layer.descriptor.digest, size, 1), (err: unknown) => err instanceof RegistryError && err.code === 'RANGE_NOT_SATISFIABLE');
  });

  it('readTail gets the last bytes and the size in one suffix-range request', async () => {
    const size = layer.data.length;
    for (const length of [1, 512, 65536, size, size + 4096]) {
      const tail = await client.readTail(ref(), layer.descriptor.digest, length);
      assert.equal(tail.size, size);
      assert.ok(tail.data.equals(layer.data.subarray(Math.max(0, size - length))), `tail of ${length}`);
    }
  });

  it('blobSize uses HEAD and matches the descriptor', async () => {
    assert.equal(await client.blobSize(ref(), layer.descriptor.digest), layer.descriptor.size);
    await assert.rejects(client.blobSize(ref(), digestOf(Buffer.from('nope'))), NotFoundError);
  });

  it('streams a blob with verification', async () => {
    const { stream, size } = await client.openBlob(ref(), layer.descriptor.digest, { size: layer.descriptor.size });
    assert.equal(size, layer.descriptor.size);
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    assert.ok(Buffer.concat(chunks).equals(layer.data));
  });
});

describe('cross-repository mount', () => {
  it('mounts a blob from another repository instead of uploading it', async () => {
    const source = `${registry.host}/lazysnap/oci`;
    const target = `${registry.host}/lazysnap/mounted`;
    const big = amd64.layers[1]!;
    const before = registry.readLog().split('\n').length;
    const res = await client.pushBlob(target, big.data, { mountFrom: ['lazysnap/oci'] });
    assert.equal(res.how, 'mounted');
    assert.equal(await client.blobSize(target, big.descriptor.digest), big.descriptor.size);
    // The HEAD is logged after anything the push did.
    await logLines(new RegExp(`"HEAD /v2/lazysnap/mounted/blobs/${big.descriptor.digest} `));
    const newLines = registry.readLog().split('\n').slice(before - 1);
    assert.ok(newLines.some((l) => /"POST \/v2\/lazysnap\/mounted\/blobs\/uploads\/\?mount=sha256(%3A|:)[0-9a-f]+&from=lazysnap(%2F|\/)oci /.test(l)), 'mount request in registry log');
    assert.ok(!newLines.some((l) => /"(PUT|PATCH) \/v2\/lazysnap\/mounted\/blobs\/uploads\//.test(l)), 'no upload after a mount');

    assert.equal(await client.mountBlob(target, amd64.config.descriptor.digest, source), true);
    // A blob the source does not have cannot be mounted; the registry offers an upload instead.
    assert.equal(await client.mountBlob(target, digestOf(Buffer.from('not there')), source), false);
    // Mount candidates that fail fall through to a normal upload.
    const fresh = pseudoRandom('mount-miss', 10_000);
    const up = await client.pushBlob(target, fresh, { mountFrom: ['lazysnap/docker', `${registry.host}/lazysnap/stream-a`] });
    assert.equal(up.how, 'uploaded');
    assert.deepEqual(await client.fetchBlob(target, up.digest), fresh);
  });
});

describe('skopeo cross-check', () => {
  it('skopeo inspects the pushed OCI image and sees our digests', async () => {
    const out = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${registry.host}/lazysnap/oci:v1`])) as {
      Digest: string;
      Layers: string[];
      Architecture: string;
      Os: string;
    };
    assert.equal(out.Digest, amd64.manifestDescriptor.digest);
    assert.deepEqual(out.Layers, amd64.layers.map((l) => l.descriptor.digest));
    assert.equal(out.Architecture, 'amd64');
    assert.equal(out.Os, 'linux');
  });

  it('skopeo picks the arm64 entry of our index', async () => {
    const out = JSON.parse(
      await skopeo(['inspect', '--tls-verify=false', '--override-arch', 'arm64', `docker://${registry.host}/lazysnap/multi-oci:multi`]),
    ) as { Digest: string; Architecture: string; Layers: string[] };
    assert.equal(out.Architecture, 'arm64');
    assert.deepEqual(out.Layers, arm64.layers.map((l) => l.descriptor.digest));
  });

  it('skopeo copies the Docker image out (verifying every blob digest)', async () => {
    const dest = join(workDir, 'skopeo-copy');
    await skopeo(['copy', '--src-tls-verify=false', `docker://${registry.host}/lazysnap/docker:v1`, `dir:${dest}`]);
    const files = readdirSync(dest);
    for (const l of dockerAmd64.layers) assert.ok(files.includes(l.descriptor.digest.slice('sha256:'.length)), `layer ${l.descriptor.digest} copied`);
    assert.ok(existsSync(join(dest, 'manifest.json')));
    assert.deepEqual(readFileSync(join(dest, 'manifest.json')), dockerAmd64.manifest);
  });

  it('what skopeo pushes, we resolve', async () => {
    const src = join(workDir, 'skopeo-copy');
    await skopeo(['copy', '--dest-tls-verify=false', `dir:${src}`, `docker://${registry.host}/lazysnap/by-skopeo:v1`]);
    const r = await client.resolve(`${registry.host}/lazysnap/by-skopeo:v1`);
    assert.deepEqual(r.manifest.layers.map((l) => l.digest), dockerAmd64.layers.map((l) => l.descriptor.digest));
  });
});

describe('unreachable registry', () => {
  it('a stopped registry gives RegistryUnreachableError quickly, and a restarted one works again', async () => {
    const ref = `${registry.host}/lazysnap/oci:v1`;
    await client.resolve(ref); // leaves a pooled keep-alive connection behind
    await registry.stop();
    const t0 = Date.now();
    await assert.rejects(client.resolve(ref), (err: unknown) => {
      assert.ok(err instanceof RegistryUnreachableError, String(err));
      assert.match(err.message, new RegExp(registry.host));
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took < 3_000, `took ${took} ms`);
    await registry.restart();
    const r = await client.resolve(ref);
    assert.equal(r.descriptor.digest, amd64.manifestDescriptor.digest);
  });
});
