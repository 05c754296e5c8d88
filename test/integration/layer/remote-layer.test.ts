// A lazily fetched layer against Debian's real docker-registry: a 100 MB+
// eStargz layer is pushed, opened with a real RegistryClient, and a small file
// is read. The bytes fetched are counted twice: by the layer's own stats and
// by the registry's access log (which records every response's size).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import * as tarStream from 'tar-stream';
import { TOC_DIGEST_ANNOTATION, writeEstargz, type EstargzBuildResult } from '../../../src/estargz/index.js';
import { ChunkCache, LayerFetchError, openRemoteLayer, registryFetcher, type RemoteLayer } from '../../../src/layer/index.js';
import { MediaType, RegistryClient, digestOf } from '../../../src/registry/index.js';
import { makeTempDir, removeTree } from '../../harness/process.js';
import { bytesServed } from '../../harness/registry-log.js';
import { startRegistry, type RegistryInstance } from '../../harness/registry.js';

const MiB = 1024 * 1024;
const BIG_FILES: Array<[string, number]> = [['data/a.bin', 40 * MiB], ['data/b.bin', 30 * MiB], ['data/c.bin', 20 * MiB], ['data/d.bin', 15 * MiB]];
const SMALL_COUNT = 40;
const FETCH_TIMEOUT_MS = 2000;

let workDir: string;
let chunkCache: ChunkCache;
let registry: RegistryInstance;
let client: RegistryClient;
let ref: string;
let built: EstargzBuildResult;
let blobSize: number;
const smallFiles = new Map<string, Buffer>();
const bigHeads = new Map<string, Buffer>();

/** A tar with big incompressible files and small text files, written to disk as a layer tar would be. */
async function writeTar(path: string): Promise<void> {
  const pack = tarStream.pack();
  const done = pipeline(pack, createWriteStream(path));
  const add = (name: string, data: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      pack.entry({ name, size: data.length, mode: 0o644, mtime: new Date(1_700_000_000_000) }, data, (err) => (err ? reject(err) : resolve()));
    });
  for (let i = 0; i < SMALL_COUNT / 2; i++) {
    const data = Buffer.from(`small file ${i}\n${randomBytes(600 + i * 37).toString('base64')}\n`);
    smallFiles.set(`etc/small-${i}.txt`, data);
    await add(`etc/small-${i}.txt`, data);
  }
  for (const [name, size] of BIG_FILES) {
    const data = randomBytes(size);
    bigHeads.set(name, data.subarray(10 * MiB, 10 * MiB + 64 * 1024));
    await add(name, data);
  }
  for (let i = SMALL_COUNT / 2; i < SMALL_COUNT; i++) {
    const data = Buffer.from(`small file ${i}\n${randomBytes(900 + i * 13).toString('base64')}\n`);
    smallFiles.set(`usr/share/small-${i}.txt`, data);
    await add(`usr/share/small-${i}.txt`, data);
  }
  pack.finalize();
  await done;
}

before(async () => {
  workDir = makeTempDir('layer-it');
  registry = await startRegistry(workDir);
  client = new RegistryClient({ retry: { baseDelayMs: 20, maxDelayMs: 200, maxAttempts: 3 } });
  const tarPath = join(workDir, 'layer.tar');
  const blobPath = join(workDir, 'layer.esgz');
  await writeTar(tarPath);
  built = await writeEstargz(createReadStream(tarPath), createWriteStream(blobPath), { compressionLevel: 1 });
  blobSize = statSync(blobPath).size;
  assert.equal(blobSize, built.compressedSize);
  ref = `${registry.host}/lazysnap/layer-it:v1`;
  await client.pushBlob(ref, { stream: createReadStream(blobPath), size: blobSize, digest: built.compressedDigest });
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [built.diffId] } }));
  await client.pushBlob(ref, config);
  await client.pushManifest(ref, {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.length },
    layers: [{ mediaType: MediaType.OciLayerGzip, digest: built.compressedDigest, size: blobSize, annotations: { [TOC_DIGEST_ANNOTATION]: built.tocDigest } }],
  });
});

after(async () => {
  await client?.close();
  await registry?.stop();
  if (workDir) removeTree(workDir);
});

/**
 * Blob bytes the registry's access log shows, once it shows `expected` or 2 s
 * have passed: the registry writes a request's line only after it sent the
 * body, so a client that has the bytes can be a moment ahead of the log.
 */
async function servedOnceLogged(expected: number): Promise<number> {
  const deadline = Date.now() + 2000;
  for (;;) {
    const served = bytesServed(registry.readLog()).get(built.compressedDigest) ?? 0;
    if (served >= expected || Date.now() > deadline) return served;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('remote layer over docker-registry', () => {
  let layer: RemoteLayer | undefined;
  after(async () => {
    await layer?.close();
  });

  it('reads a small file of a 100 MB+ layer fetching a tiny fraction of the blob', async () => {
    assert.ok(blobSize > 100 * MiB, `blob is ${blobSize} bytes`);
    const resolved = await client.resolve(ref);
    const desc = resolved.manifest.layers[0]!;
    const servedBefore = bytesServed(registry.readLog()).get(built.compressedDigest) ?? 0;
    chunkCache = await ChunkCache.open({ memoryBytes: 64 * MiB, diskDir: join(workDir, 'chunks'), diskBytes: 256 * MiB });
    const cache = chunkCache;
    const started = performance.now();
    layer = await openRemoteLayer({
      ref,
      digest: desc.digest,
      size: desc.size,
      expectedTocDigest: desc.annotations?.[TOC_DIGEST_ANNOTATION],
      fetcher: registryFetcher(client, ref, desc.digest),
      cache,
      fetchTimeoutMs: FETCH_TIMEOUT_MS,
      tocCacheDir: join(workDir, 'tocs'),
    });
    const openMs = performance.now() - started;
    const afterOpen = layer.stats().bytesFetched;
    assert.ok(layer.stats().openRequests <= 2);

    const name = 'usr/share/small-33.txt';
    const node = layer.lookup(`/${name}`)!;
    const data = await layer.read(node, 0, node.size);
    assert.deepEqual(data, smallFiles.get(name));
    const stats = layer.stats();
    const forRead = stats.bytesFetched - afterOpen;
    const logged = (await servedOnceLogged(stats.bytesFetched + servedBefore)) - servedBefore;
    const fraction = stats.bytesFetched / blobSize;
    console.log(
      `# blob ${blobSize} B; open ${openMs.toFixed(0)} ms, ${stats.openRequests} request(s), ${afterOpen} B; ` +
        `read of ${node.size} B fetched ${forRead} B (${(forRead / node.size).toFixed(2)} B per byte read); ` +
        `total ${stats.bytesFetched} B = ${(fraction * 100).toFixed(3)}% of the blob; registry log says ${logged} B`,
    );
    assert.ok(fraction < 0.05, `fetched ${(fraction * 100).toFixed(2)}% of the blob`);
    assert.equal(logged, stats.bytesFetched, 'the registry served exactly what the layer counted');
    // The read's own chunk and the small files stored after it (at most 64 KiB of the blob from its start).
    assert.ok(forRead <= 64 * 1024, `small file read fetched ${forRead} bytes`);
  });

  it('rejects uncached reads within the deadline while the registry is down, serves cached data, and recovers', async () => {
    assert.ok(layer, 'opened by the previous test');
    const cachedName = 'usr/share/small-33.txt';
    const cachedNode = layer.lookup(`/${cachedName}`)!;
    await registry.stop();
    try {
      const big = layer.lookup('/data/b.bin')!;
      const started = Date.now();
      const err = await layer.read(big, 10 * MiB, 64 * 1024).then(() => undefined, (e: unknown) => e);
      const took = Date.now() - started;
      assert.ok(err instanceof LayerFetchError, `expected LayerFetchError, got ${String(err)}`);
      assert.ok(took < FETCH_TIMEOUT_MS + 1000, `rejected after ${took} ms`);
      console.log(`# uncached read with the registry down rejected after ${took} ms (${err.message})`);
      const small = layer.lookup('/etc/small-3.txt')!;
      await assert.rejects(layer.read(small, 0, small.size), LayerFetchError);
      assert.deepEqual(await layer.read(cachedNode, 0, cachedNode.size), smallFiles.get(cachedName), 'cached data is still served');

      // Worse than down: a listener that accepts connections and never answers.
      const sockets = new Set<Socket>();
      const blackHole = createServer((socket) => {
        sockets.add(socket);
        socket.on('error', () => {});
      });
      const port = Number(registry.host.split(':')[1]);
      await new Promise<void>((resolve, reject) => {
        blackHole.once('error', reject);
        blackHole.listen(port, '127.0.0.1', resolve);
      });
      try {
        const t0 = Date.now();
        const hung = await layer.read(big, 20 * MiB, 1000).then(() => undefined, (e: unknown) => e);
        const hungMs = Date.now() - t0;
        assert.ok(hung instanceof LayerFetchError && hung.timedOut, `expected a timed-out LayerFetchError, got ${String(hung)}`);
        assert.ok(hungMs >= FETCH_TIMEOUT_MS - 100 && hungMs < FETCH_TIMEOUT_MS + 1000, `rejected after ${hungMs} ms`);
        console.log(`# read against a black-holed registry rejected after ${hungMs} ms`);
        assert.deepEqual(await layer.read(cachedNode, 0, cachedNode.size), smallFiles.get(cachedName));
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => blackHole.close(() => resolve()));
      }
    } finally {
      await registry.restart();
    }
    const big = layer.lookup('/data/b.bin')!;
    assert.deepEqual(await layer.read(big, 10 * MiB, 64 * 1024), bigHeads.get('data/b.bin'));
    const small = layer.lookup('/etc/small-3.txt')!;
    assert.deepEqual(await layer.read(small, 0, small.size), smallFiles.get('etc/small-3.txt'));
  });

  it('after a background fetch, reopens and reads with the registry down (TOC cache + disk cache)', async () => {
    assert.ok(layer, 'opened by the first test');
    const started = performance.now();
    const result = await layer.startBackgroundFetch();
    const ms = performance.now() - started;
    assert.equal(result.complete, true, JSON.stringify(result));
    assert.ok(layer.isFullyCached());
    console.log(`# background fetch: ${result.runs} requests, ${(blobSize / MiB / (ms / 1000)).toFixed(0)} MiB/s, ${ms.toFixed(0)} ms`);
    await layer.close();
    layer = undefined;
    await chunkCache.flush();

    await registry.stop();
    try {
      const cache = await ChunkCache.open({ memoryBytes: 16 * MiB, diskDir: join(workDir, 'chunks'), diskBytes: 256 * MiB });
      const reopened = await openRemoteLayer({
        ref,
        digest: built.compressedDigest,
        size: blobSize,
        expectedTocDigest: built.tocDigest,
        fetcher: registryFetcher(client, ref, built.compressedDigest),
        cache,
        fetchTimeoutMs: FETCH_TIMEOUT_MS,
        tocCacheDir: join(workDir, 'tocs'),
      });
      try {
        assert.equal(reopened.stats().openedFrom, 'toc-cache');
        assert.ok(reopened.isFullyCached());
        const big = reopened.lookup('/data/b.bin')!;
        assert.deepEqual(await reopened.read(big, 10 * MiB, 64 * 1024), bigHeads.get('data/b.bin'));
        for (const [name, data] of smallFiles) {
          const node = reopened.lookup(`/${name}`)!;
          assert.deepEqual(await reopened.read(node, 0, node.size), data);
        }
        assert.equal(reopened.stats().requests, 0);
        assert.equal(reopened.stats().fetchErrors, 0);
      } finally {
        await reopened.close();
      }
    } finally {
      await registry.restart();
    }
  });
});
