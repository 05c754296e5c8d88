import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkCache } from '../../../src/layer/index.js';
import { CHUNK, FakeFetcher, buildBlob, contentOf, noise, openTestLayer, standardBlob, standardFiles, tempDir, type TestBlob } from './fixtures.js';

const regularFiles = (blob: TestBlob) => blob.files.filter((f) => (f.type ?? 'file') === 'file' && !f.name.includes('.wh.'));

async function prioritizedBlob(): Promise<TestBlob> {
  const files = standardFiles();
  const { blob, result } = await buildBlob(files, { prioritizedFiles: ['a/big.bin', 'a/small.txt', 'etc/keep.conf'] });
  return { files, blob, result };
}

describe('prefetch', () => {
  it('fetches the landmark range in one request and then serves those files without fetching', async () => {
    const blob = await prioritizedBlob();
    const { layer, fake } = await openTestLayer(blob);
    try {
      assert.equal(layer.landmark, 'prefetch');
      const prefetchEnd = layer.index.prefetchEnd!;
      assert.ok(prefetchEnd > 5 * CHUNK);
      fake.reset();
      const result = await layer.prefetch();
      assert.equal(fake.calls.length, 1);
      const first = layer.index.allChunks()[0]!;
      assert.deepEqual(fake.calls[0], { offset: first.offset, length: prefetchEnd - first.offset });
      assert.ok(result.applicable);
      assert.equal(result.fetchedChunks, 8, 'six chunks of big.bin, one each of small.txt and keep.conf');
      // Idempotent.
      assert.equal(await layer.prefetch(), result);
      fake.reset();
      for (const name of ['a/big.bin', 'a/small.txt', 'etc/keep.conf', 'a/hl']) {
        const node = layer.lookup(`/${name}`)!;
        assert.deepEqual(await layer.read(node, 0, node.size), contentOf(blob.files, name === 'a/hl' ? 'a/big.bin' : name));
      }
      assert.equal(fake.calls.length, 0);
      // Files after the landmark were not fetched.
      assert.equal(layer.isFullyCached(), false);
    } finally {
      await layer.close();
    }
  });

  it('does nothing for a blob without a prefetch landmark', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob);
    fake.reset();
    const result = await layer.prefetch();
    assert.equal(result.applicable, false);
    assert.equal(fake.calls.length, 0);
    await layer.close();
  });

  it('lets readers of prioritized files join the prefetch instead of fetching again', async () => {
    const blob = await prioritizedBlob();
    const { layer, fake } = await openTestLayer(blob);
    try {
      fake.reset();
      fake.delayMs = 50;
      const prefetch = layer.prefetch();
      const node = layer.lookup('/a/big.bin')!;
      const read = layer.read(node, 2 * CHUNK, 100);
      assert.deepEqual(await read, contentOf(blob.files, 'a/big.bin').subarray(2 * CHUNK, 2 * CHUNK + 100));
      await prefetch;
      assert.equal(fake.calls.length, 1);
    } finally {
      await layer.close();
    }
  });
});

describe('background fetch', () => {
  it('caches the whole layer with bounded concurrency, after which reads need no requests', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob, { backgroundRangeBytes: 100 * 1024, backgroundFetchConcurrency: 2 });
    try {
      fake.reset();
      fake.delayMs = 5;
      assert.equal(layer.isFullyCached(), false);
      const result = await layer.startBackgroundFetch();
      assert.equal(result.complete, true);
      assert.equal(result.cancelled, false);
      assert.equal(result.failedRuns, 0);
      assert.ok(layer.isFullyCached());
      assert.ok(fake.calls.length >= 4, `${fake.calls.length} requests`);
      assert.ok(fake.maxInFlight <= 2, `max in flight ${fake.maxInFlight}`);
      assert.ok(fake.maxInFlight === 2, 'uses the concurrency it has');
      assert.ok(fake.calls.every((c) => c.length <= 100 * 1024 + CHUNK * 1.2), 'ranges of bounded size');
      fake.reset();
      for (const f of regularFiles(blob)) {
        const node = layer.lookup(`/${f.name}`)!;
        assert.deepEqual(await layer.read(node, 0, node.size), f.data);
      }
      assert.equal(fake.calls.length, 0);
    } finally {
      await layer.close();
    }
  });

  it('waits while foreground reads are in flight', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob);
    try {
      fake.reset();
      fake.hold();
      const read = layer.read(layer.lookup('/mid.bin')!, 0, 10);
      await new Promise((r) => setTimeout(r, 10));
      const background = layer.startBackgroundFetch();
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(fake.calls.length, 1, 'only the foreground request went out');
      fake.release();
      assert.deepEqual(await read, contentOf(blob.files, 'mid.bin').subarray(0, 10));
      const result = await background;
      assert.equal(result.complete, true);
      assert.ok(fake.calls.length > 1);
    } finally {
      await layer.close();
    }
  });

  it('is cancelled by close()', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob, { backgroundRangeBytes: 64 * 1024, backgroundFetchConcurrency: 1, fetchTimeoutMs: 30_000 });
    fake.reset();
    fake.mode = 'hang';
    const background = layer.startBackgroundFetch();
    await new Promise((r) => setTimeout(r, 30));
    const started = Date.now();
    await layer.close();
    const result = await background;
    assert.ok(Date.now() - started < 1000);
    assert.equal(result.cancelled, true);
    assert.equal(result.complete, false);
    assert.equal(fake.calls.length, 1, 'no request after close');
  });

  it('retries failed ranges, then gives up without rejecting', async () => {
    const blob = await standardBlob();
    const { layer, fake, logger } = await openTestLayer(blob);
    try {
      fake.mode = 'fail';
      const result = await layer.startBackgroundFetch();
      assert.equal(result.complete, false);
      assert.ok(result.failedRuns >= 1);
      assert.ok(logger.lines.some((l) => l.level === 'warn' && /gave up/.test(l.msg ?? '')));
    } finally {
      await layer.close();
    }
  });

  it('a fully cached layer opens and reads with the registry gone (TOC cache + disk cache)', async () => {
    const dir = tempDir('restart');
    try {
      const blob = await standardBlob();
      const tocCacheDir = `${dir.path}/tocs`;
      const first = await ChunkCache.open({ memoryBytes: 1 << 20, diskDir: `${dir.path}/chunks`, diskBytes: 64 << 20 });
      const a = await openTestLayer(blob, { cache: first, tocCacheDir });
      assert.equal((await a.layer.startBackgroundFetch()).complete, true);
      // Bulk-fetched chunks went to disk (written before the fetch reported completion), not into memory.
      const distinct = new Set(a.layer.index.allChunks().map((c) => c.chunkDigest)).size;
      assert.equal(first.stats().disk!.entries, distinct);
      assert.equal(first.stats().memoryEntries, 0);
      await a.layer.close();
      await first.flush();

      const second = await ChunkCache.open({ memoryBytes: 1 << 20, diskDir: `${dir.path}/chunks`, diskBytes: 64 << 20 });
      const dead = new FakeFetcher(noise(1, 10));
      dead.mode = 'fail';
      const b = await openTestLayer(blob, { cache: second, tocCacheDir, fake: dead });
      try {
        assert.ok(b.layer.isFullyCached());
        for (const f of regularFiles(blob)) {
          const node = b.layer.lookup(`/${f.name}`)!;
          assert.deepEqual(await b.layer.read(node, 0, node.size), f.data);
        }
        assert.equal(dead.calls.length, 0);
        assert.ok(b.layer.stats().diskHits > 0);
      } finally {
        await b.layer.close();
      }
    } finally {
      dir.remove();
    }
  });
});
