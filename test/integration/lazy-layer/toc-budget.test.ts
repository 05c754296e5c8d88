// Layers whose TOCs list very many entries, served from a real registry
// through the EstargzMounter with a small TOC memory budget: the layers
// that fit are mounted and read over FUSE, the one past the budget is
// refused with TocMemoryBudgetError (the snapshotter then downloads it),
// memory stays bounded, and closing a layer gives its share back.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { Registry } from 'prom-client';
import { ESTARGZ_FOOTER_SIZE, extractTocJson, openEstargz } from '../../../src/estargz/index.js';
import { ChunkCache, FsTree, TocMemoryBudgetError, tocParseMemory } from '../../../src/layer/index.js';
import { RegistryClient } from '../../../src/registry/index.js';
import type { RemoteLayerRef } from '../../../src/snapshotter/metadata-store.js';
import { EstargzMounter } from '../../../src/snapshotter/remote/estargz-mounter.js';
import { storeEstargzLayer } from '../../harness/estargz-layer.js';
import { pushImage, writeManifest, type BuiltLayer } from '../../harness/image.js';
import { makeTempDir, removeTree } from '../../harness/process.js';
import { startRegistry, type RegistryInstance } from '../../harness/registry.js';
import { buildBlob, type FileSpec } from '../../unit/layer/fixtures.js';
import { mkdirSync } from 'node:fs';

/** Entries per layer: enough that the old representation (about 700 bytes an entry) would show, small enough for a 2-core machine. */
const ENTRIES = 120_000;
const LAYERS = 3;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap and buffers still reachable, once the promise machinery of finished work has let go of its buffers. */
async function retainedBytes(): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (let i = 0; i < 3; i++) gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

function manyFiles(layer: number): FileSpec[] {
  const files: FileSpec[] = [{ name: 'hello.txt', data: Buffer.from(`hello from layer ${layer}\n`) }];
  for (let i = 0; files.length < ENTRIES; i++) files.push({ name: `d${Math.floor(i / 1000)}/f${i}`, data: Buffer.alloc(0) });
  return files;
}

const logger = pino({ level: 'silent' });
let work: string;
let registry: RegistryInstance;
let ref: string;
let layers: BuiltLayer[];
/** What one layer's index and tree keep, as the layer itself reckons it. */
let perLayerBytes: number;
/** What parsing one layer's TOC reserves while it runs. */
let parseBytes: number;

before(async () => {
  work = makeTempDir('toc-budget');
  registry = await startRegistry(work);
  const layoutDir = join(work, 'oci');
  mkdirSync(join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  layers = [];
  for (let i = 0; i < LAYERS; i++) {
    const { blob, result } = await buildBlob(manyFiles(i));
    if (i === 0) {
      const index = await openEstargz(blob);
      perLayerBytes = index.estimatedBytes + FsTree.fromIndex(index).estimatedBytes;
      const { json } = await extractTocJson(blob.subarray(result.tocOffset, blob.length - ESTARGZ_FOOTER_SIZE), 256 << 20);
      parseBytes = tocParseMemory(json);
    }
    layers.push(storeEstargzLayer(layoutDir, blob, result.tocDigest));
  }
  ref = pushImage(writeManifest(layoutDir, 'v1', layers), registry.host, 'lazy/many-entries:v1');
});

after(async () => {
  await registry?.stop();
  removeTree(work);
});

describe('TOC memory budget with a real registry', () => {
  it('serves the layers that fit, refuses the one past the budget, stays bounded, and frees a closed layer\'s share', async () => {
    // Room for one layer kept and another's parse, and half a layer more: a third does not fit until one closes.
    const tocMemoryBytes = Math.floor(perLayerBytes * 1.5 + parseBytes);
    assert.ok(2 * perLayerBytes + parseBytes > tocMemoryBytes);
    const cache = await ChunkCache.open({ memoryBytes: 16 << 20, diskDir: join(work, 'chunks'), diskBytes: 64 << 20, logger });
    const registryClient = new RegistryClient({ timeouts: { requestMs: 10_000 }, retry: { maxAttempts: 2 } });
    const mounter = new EstargzMounter({
      registry: registryClient, mountRoot: join(work, 'layers'), cache, tocCacheDir: join(work, 'tocs'), logger, metrics: new Registry(),
      allowUnverified: false, fetchTimeoutMs: 10_000, prefetch: false, backgroundFetch: false, backgroundFetchConcurrency: 1, tocMemoryBytes,
    });
    const acquired: RemoteLayerRef[] = [];
    try {
      const before = { retained: await retainedBytes(), rss: process.memoryUsage().rss };
      for (const i of [0, 1]) {
        const layerRef = await mounter.resolve({ protocol: 'remote-snapshot', ref, layerDigest: layers[i]!.digest });
        assert.ok(layerRef, `layer ${i} is served remotely`);
        const mountpoint = await mounter.acquire(layerRef, layerRef.digest);
        acquired.push(layerRef);
        assert.equal(await readFile(join(mountpoint, 'hello.txt'), 'utf8'), `hello from layer ${i}\n`);
        assert.equal((await readFile(join(mountpoint, 'd7', 'f7000'))).length, 0);
      }
      await assert.rejects(
        mounter.resolve({ protocol: 'remote-snapshot', ref, layerDigest: layers[2]!.digest }),
        (err: unknown) => err instanceof TocMemoryBudgetError && err.digest === layers[2]!.digest && err.budgetBytes === tocMemoryBytes && err.neededBytes > err.availableBytes,
      );
      const grown = { retained: (await retainedBytes()) - before.retained, rss: process.memoryUsage().rss - before.rss };
      console.log(`two open layers of ${ENTRIES} entries: budget ${(tocMemoryBytes / 2 ** 20).toFixed(1)} MiB, retained heap +${(grown.retained / 2 ** 20).toFixed(1)} MiB, RSS +${(grown.rss / 2 ** 20).toFixed(1)} MiB`);
      // Generous bounds (a noisy machine, a GC that keeps what it likes): the two open layers keep
      // what the budget allows plus slack; before, 120k entries each kept about 80 MB of heap.
      assert.ok(grown.retained < tocMemoryBytes + (32 << 20), `retained heap grew by ${(grown.retained / 2 ** 20).toFixed(1)} MiB (budget ${(tocMemoryBytes / 2 ** 20).toFixed(1)} MiB)`);
      assert.ok(grown.rss < tocMemoryBytes + (256 << 20), `RSS grew by ${(grown.rss / 2 ** 20).toFixed(1)} MiB`);

      // Unmounting the first layer closes it and gives its share back: now the third fits.
      const firstLayer = acquired.shift()!;
      await mounter.release(firstLayer, firstLayer.digest);
      const third = await mounter.resolve({ protocol: 'remote-snapshot', ref, layerDigest: layers[2]!.digest });
      assert.ok(third, 'layer 2 is served remotely once layer 0 is closed');
      const mountpoint = await mounter.acquire(third, third.digest);
      acquired.push(third);
      assert.equal(await readFile(join(mountpoint, 'hello.txt'), 'utf8'), 'hello from layer 2\n');
    } finally {
      for (const layerRef of acquired) await mounter.release(layerRef, layerRef.digest).catch(() => undefined);
      await mounter.close();
      await registryClient.close();
    }
  });
});
