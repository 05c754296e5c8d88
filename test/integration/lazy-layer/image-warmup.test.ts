// The first Prepare of an image sets up all of its eStargz layers at once:
// every layer is opened (footer and TOC, one suffix-range request each when
// they fit) and mounted before its own Prepare comes, so those Prepares cost
// no registry round trip and no mount. Real registry, real FUSE.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import { ChunkCache, inlineTocParser, type TocParser } from '../../../src/layer/index.js';
import { RegistryClient } from '../../../src/registry/index.js';
import type { RemoteLayerRef } from '../../../src/snapshotter/metadata-store.js';
import { EstargzMounter } from '../../../src/snapshotter/remote/estargz-mounter.js';
import { storeEstargzLayer } from '../../harness/estargz-layer.js';
import { pushImage, writeManifest, type BuiltLayer } from '../../harness/image.js';
import { makeTempDir, removeTree, waitUntil } from '../../harness/process.js';
import { blobRequests } from '../../harness/registry-log.js';
import { startRegistry, type RegistryInstance } from '../../harness/registry.js';
import { buildBlob } from '../../unit/layer/fixtures.js';

const LAYERS = 4;
const logger = pino({ level: 'silent' });
let work: string;
let registry: RegistryInstance;
let ref: string;
let layers: BuiltLayer[];

before(async () => {
  work = makeTempDir('image-warmup');
  registry = await startRegistry(work);
  const layoutDir = join(work, 'oci');
  mkdirSync(join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  layers = [];
  for (let i = 0; i < LAYERS; i++) {
    const { blob, result } = await buildBlob([{ name: `layer${i}.txt`, data: Buffer.from(`layer ${i}\n`) }]);
    layers.push(storeEstargzLayer(layoutDir, blob, result.tocDigest));
  }
  ref = pushImage(writeManifest(layoutDir, 'v1', layers), registry.host, 'lazy/warmup:v1');
});

after(async () => {
  await registry?.stop();
  removeTree(work);
});

async function fuseMountsUnder(dir: string): Promise<number> {
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  return mounts.split('\n').filter((line) => line.includes(` ${dir}/`) && line.includes(' fuse.')).length;
}

describe('setting up an image at its first Prepare', () => {
  it('opens and mounts every layer ahead, so the later Prepares make no registry request', async () => {
    const mountRoot = join(work, 'layers');
    const cache = await ChunkCache.open({ memoryBytes: 16 << 20, logger });
    const registryClient = new RegistryClient();
    // The parser's own warm-up must stop at the first real request, once.
    let warmUpStops = 0;
    const tocParser: TocParser = { parse: (request) => inlineTocParser.parse(request), close: async () => {}, stopWarmUp: () => void warmUpStops++ };
    const mounter = new EstargzMounter({
      registry: registryClient, mountRoot, cache, tocCacheDir: join(work, 'tocs'), logger, metrics: new Registry(),
      allowUnverified: false, fetchTimeoutMs: 10_000, prefetch: false, backgroundFetch: false, backgroundFetchConcurrency: 1, tocParser,
    });
    const acquired: RemoteLayerRef[] = [];
    const isLayer = (digest: string): boolean => layers.some((l) => l.digest === digest);
    // The push's "is this blob there yet?" checks (HEAD answered 404) are not ours.
    const layerRequests = () => blobRequests(registry.readLog()).filter((r) => isLayer(r.digest) && !(r.method === 'HEAD' && r.status === 404));
    try {
      const first = await mounter.resolve({ protocol: 'remote-snapshot', ref, layerDigest: layers[0]!.digest });
      assert.ok(first);
      assert.equal(warmUpStops, 1, 'the first request stopped the TOC parser\'s warm-up');
      acquired.push(first);
      await mounter.acquire(first, first.digest);
      await waitUntil('every layer of the image mounted', async () => (await fuseMountsUnder(mountRoot)) === LAYERS, 20_000);
      const requestsBefore = layerRequests();
      // Each layer was opened from one suffix-range request: its footer and TOC fit in the first read.
      assert.equal(requestsBefore.length, LAYERS, `one request per layer, got ${JSON.stringify(requestsBefore)}`);
      assert.ok(requestsBefore.every((r) => r.method === 'GET' && r.status === 206), 'no HEAD, no whole-blob read');
      const mountpoints: string[] = [];
      for (let i = 1; i < LAYERS; i++) {
        const layerRef = await mounter.resolve({ protocol: 'remote-snapshot', ref, layerDigest: layers[i]!.digest });
        assert.ok(layerRef, `layer ${i} is served remotely`);
        acquired.push(layerRef);
        mountpoints[i] = await mounter.acquire(layerRef, layerRef.digest);
      }
      const after = layerRequests();
      assert.equal(after.length, requestsBefore.length, 'the later Prepares needed no registry request');
      assert.equal(await fuseMountsUnder(mountRoot), LAYERS, 'no second mount of any layer');
      for (let i = 1; i < LAYERS; i++) assert.equal(await readFile(join(mountpoints[i]!, `layer${i}.txt`), 'utf8'), `layer ${i}\n`);
      assert.equal(warmUpStops, 1, 'told once, not per request');
    } finally {
      for (const layerRef of acquired) await mounter.release(layerRef, layerRef.digest).catch(() => undefined);
      await mounter.close();
      await registryClient.close();
    }
  });
  it('leaves nothing mounted when it is closed while an image is still being set up', async () => {
    const mountRoot = join(work, 'layers-closing');
    const cache = await ChunkCache.open({ memoryBytes: 16 << 20, logger });
    const registryClient = new RegistryClient();
    const mounter = new EstargzMounter({
      registry: registryClient, mountRoot, cache, tocCacheDir: join(work, 'tocs-closing'), logger, metrics: new Registry(),
      allowUnverified: false, fetchTimeoutMs: 10_000, prefetch: false, backgroundFetch: false, backgroundFetchConcurrency: 1,
    });
    try {
      // The first layer's Prepare starts opening and mounting the other three; shutdown comes before they are done.
      const first = await mounter.resolve({ protocol: 'remote-snapshot', ref, layerDigest: layers[0]!.digest });
      assert.ok(first);
    } finally {
      await mounter.close();
      await registryClient.close();
    }
    // Whatever the set-up still mounted after close() began was taken down by it; nothing comes later.
    assert.equal(await fuseMountsUnder(mountRoot), 0, 'no FUSE mount outlives the mounter');
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(await fuseMountsUnder(mountRoot), 0, 'no FUSE mount appears after close()');
  });
});
