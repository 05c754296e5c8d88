import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ChunkCache, DiskChunkStore, chunkCacheKey } from '../../../src/layer/index.js';
import { CHUNK, FakeFetcher, contentOf, noise, openTestLayer, recordingLogger, standardBlob, tempDir } from './fixtures.js';

const digestOf = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function filesUnder(dir: string): Array<{ path: string; size: number }> {
  const out: Array<{ path: string; size: number }> = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) out.push(...filesUnder(path));
    else out.push({ path, size: st.size });
  }
  return out;
}

describe('chunk cache', () => {
  it('serves repeated reads from memory without fetching', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob);
    try {
      const node = layer.lookup('/a/big.bin')!;
      await layer.read(node, 0, node.size);
      fake.reset();
      assert.deepEqual(await layer.read(node, 1000, 3 * CHUNK), contentOf(blob.files, 'a/big.bin').subarray(1000, 1000 + 3 * CHUNK));
      assert.equal(fake.calls.length, 0);
      assert.ok(layer.stats().memoryHits >= 4);
    } finally {
      await layer.close();
    }
  });

  it('bounds the memory tier in bytes', async () => {
    const cache = ChunkCache.inMemory(100_000);
    for (let i = 0; i < 10; i++) await cache.put(`sha256:${String(i).repeat(64).slice(0, 64)}`, Buffer.alloc(30_000, i));
    const stats = cache.stats();
    assert.ok(stats.memoryBytes <= 100_000, `memory holds ${stats.memoryBytes}`);
    assert.equal(stats.memoryEntries, 3);
  });

  it('stores chunks on disk by digest and serves them to a later cache instance', async () => {
    const dir = tempDir('disk');
    try {
      const blob = await standardBlob();
      const first = await ChunkCache.open({ memoryBytes: 1 << 20, diskDir: dir.path, diskBytes: 64 << 20 });
      const a = await openTestLayer(blob, { cache: first });
      const node = a.layer.lookup('/tail.bin')!;
      await a.layer.read(node, 0, node.size);
      await a.layer.close();
      await first.flush();
      const chunk = a.layer.index.lookup('tail.bin')!.chunks[1]!;
      const hex = chunk.chunkDigest!.slice('sha256:'.length);
      const path = join(dir.path, 'sha256', hex.slice(0, 2), hex);
      assert.equal(first.diskPathFor(chunk.chunkDigest!), path);
      assert.deepEqual(readFileSync(path), contentOf(blob.files, 'tail.bin').subarray(CHUNK, 2 * CHUNK));

      // A new cache (a daemon restart) rebuilds its index from the directory.
      const second = await ChunkCache.open({ memoryBytes: 1 << 20, diskDir: dir.path, diskBytes: 64 << 20 });
      assert.equal(second.stats().disk!.entries, 3);
      const b = await openTestLayer(blob, { cache: second });
      b.fake.reset();
      assert.deepEqual(await b.layer.read(b.layer.lookup('/tail.bin')!, 0, 3 * CHUNK), contentOf(blob.files, 'tail.bin'));
      assert.equal(b.fake.calls.length, 0);
      assert.equal(b.layer.stats().diskHits, 3);
      // Promoted to memory: the next read is a memory hit.
      await b.layer.read(b.layer.lookup('/tail.bin')!, 0, 10);
      assert.equal(b.layer.stats().diskHits, 3);
      assert.ok(b.layer.stats().memoryHits >= 1);
      await b.layer.close();
    } finally {
      dir.remove();
    }
  });

  it('detects a corrupted disk cache file, deletes it and fetches the chunk again', async () => {
    const dir = tempDir('corrupt');
    try {
      const blob = await standardBlob();
      const logger = recordingLogger();
      const cache = await ChunkCache.open({ memoryBytes: 1 << 20, diskDir: dir.path, diskBytes: 64 << 20, logger });
      const { layer, fake } = await openTestLayer(blob, { cache });
      try {
        const node = layer.lookup('/mid.bin')!;
        await layer.read(node, 0, 10);
        await cache.flush();
        const chunk = layer.index.lookup('mid.bin')!.chunks[0]!;
        const key = chunkCacheKey(layer.digest, chunk);
        const path = cache.diskPathFor(key)!;
        const bytes = readFileSync(path);
        bytes[500]! ^= 0xff;
        writeFileSync(path, bytes);
        cache.dropFromMemory(key);
        fake.reset();
        assert.deepEqual(await layer.read(node, 0, 1000), contentOf(blob.files, 'mid.bin').subarray(0, 1000));
        assert.equal(fake.calls.length, 1, 'refetched');
        assert.equal(cache.stats().disk!.corruptions, 1);
        assert.equal(layer.stats().diskHits, 0);
        assert.ok(logger.lines.some((l) => l.level === 'warn' && l.obj.digest === key), 'corruption logged');
        await cache.flush();
        // The refetched chunk was written again, whole.
        assert.deepEqual(readFileSync(path), contentOf(blob.files, 'mid.bin').subarray(0, CHUNK));
      } finally {
        await layer.close();
      }
    } finally {
      dir.remove();
    }
  });

  it('keeps the disk tier within its byte budget, evicting least recently used first', async () => {
    const dir = tempDir('evict');
    try {
      const store = await DiskChunkStore.open({ dir: dir.path, maxBytes: 5 * 10_000 });
      const blobs = Array.from({ length: 12 }, (_, i) => noise(100 + i, 10_000));
      const keys = blobs.map(digestOf);
      for (let i = 0; i < 4; i++) await store.put(keys[i]!, blobs[i]!);
      // Use chunk 0 so it becomes most recent; chunk 1 is then the oldest.
      assert.ok(await store.get(keys[0]!));
      for (let i = 4; i < 12; i++) {
        await store.put(keys[i]!, blobs[i]!);
        await store.flush();
        assert.ok(store.stats().bytes <= 5 * 10_000);
        const onDisk = filesUnder(dir.path).reduce((n, f) => n + f.size, 0);
        assert.ok(onDisk <= 5 * 10_000, `after put ${i}: ${onDisk} bytes on disk`);
        if (i === 7) assert.deepEqual(keys.slice(0, 4).map((k) => store.has(k)), [true, false, false, false], 'the recently used chunk outlives older ones');
      }
      assert.deepEqual(keys.map((k) => store.has(k)), [false, false, false, false, false, false, false, true, true, true, true, true]);
      // Reopen with a smaller budget: the oldest go.
      const smaller = await DiskChunkStore.open({ dir: dir.path, maxBytes: 2 * 10_000 });
      await smaller.flush();
      assert.equal(smaller.stats().entries, 2);
      assert.equal(filesUnder(dir.path).length, 2);
      // A chunk larger than the whole budget is not stored at all.
      await smaller.put(digestOf(Buffer.alloc(30_000)), Buffer.alloc(30_000));
      assert.equal(smaller.stats().entries, 2);
    } finally {
      dir.remove();
    }
  });

  it('writes atomically, cleans crash leftovers and ignores foreign files on scan', async () => {
    const dir = tempDir('scan');
    try {
      const data = noise(7, 5000);
      const key = digestOf(data);
      const hex = key.slice(7);
      const sub = join(dir.path, 'sha256', hex.slice(0, 2));
      mkdirSync(sub, { recursive: true });
      writeFileSync(join(sub, hex), data);
      writeFileSync(join(sub, `${hex}.tmp-123-1`), data.subarray(0, 100));
      writeFileSync(join(dir.path, 'README'), 'not a chunk');
      const store = await DiskChunkStore.open({ dir: dir.path, maxBytes: 1 << 20 });
      assert.equal(store.stats().entries, 1);
      assert.equal(existsSync(join(sub, `${hex}.tmp-123-1`)), false);
      assert.deepEqual(await store.get(key), data);
      // Refuses keys that are not digests (they would be paths otherwise).
      await store.put('sha256:../../etc/passwd', data);
      await store.put('layer:sha256:abc@1+0:5', data);
      assert.equal(store.stats().entries, 1);
      // A file deleted behind the store's back is a miss, not an error.
      const other = noise(8, 100);
      await store.put(digestOf(other), other);
      const otherPath = store.pathFor(digestOf(other))!;
      assert.ok(existsSync(otherPath));
      writeFileSync(otherPath, ''); // truncated behind the store's back
      assert.equal(await store.get(digestOf(other)), undefined);
      assert.equal(store.has(digestOf(other)), false);
    } finally {
      dir.remove();
    }
  });

  it('keeps digest-less chunks in memory only', async () => {
    const dir = tempDir('nodigest');
    try {
      const cache = await ChunkCache.open({ memoryBytes: 1 << 20, diskDir: dir.path, diskBytes: 1 << 20 });
      const chunk = { fileName: 'f', chunkOffset: 0, chunkSize: 3, offset: 10, compressedEnd: 20, innerOffset: 0, chunkDigest: undefined };
      const key = chunkCacheKey('sha256:' + 'a'.repeat(64), chunk);
      assert.match(key, /^layer:sha256:a+@10\+0:3$/);
      await cache.put(key, Buffer.from('abc'));
      await cache.flush();
      assert.deepEqual((await cache.get(key))?.data, Buffer.from('abc'));
      assert.equal(filesUnder(dir.path).length, 0);
    } finally {
      dir.remove();
    }
  });

  it('shares chunks between layers with the same content', async () => {
    const blob = await standardBlob();
    const cache = ChunkCache.inMemory(16 << 20);
    const a = await openTestLayer(blob, { cache });
    const node = a.layer.lookup('/a/big.bin')!;
    await a.layer.read(node, 0, node.size);
    const b = await openTestLayer(blob, { cache, digest: 'sha256:' + 'e'.repeat(64), fake: new FakeFetcher(blob.blob) });
    b.fake.reset();
    await b.layer.read(b.layer.lookup('/a/big.bin')!, 0, node.size);
    assert.equal(b.fake.calls.length, 0);
    await a.layer.close();
    await b.layer.close();
  });
});
