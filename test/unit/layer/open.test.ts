import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { InvalidTocError, TocDigestMismatchError } from '../../../src/estargz/index.js';
import { DEFAULT_TAIL_SIZE, LayerFetchError, UnverifiedLayerError } from '../../../src/layer/index.js';
import { FakeFetcher, buildBlob, contentOf, openTestLayer, standardBlob, tempDir, type FileSpec, type TestBlob } from './fixtures.js';

async function manyFilesBlob(count: number): Promise<TestBlob> {
  const files: FileSpec[] = Array.from({ length: count }, (_, i) => ({ name: `dir${i % 10}/file-with-a-longish-name-${i}.txt`, data: Buffer.from(`file ${i}\n`) }));
  const { blob, result } = await buildBlob(files);
  return { files, blob, result };
}

describe('opening a layer', () => {
  it('reads footer and TOC in one request when the tail holds the TOC', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob);
    assert.equal(fake.calls.length, 1);
    const tail = Math.min(blob.blob.length, DEFAULT_TAIL_SIZE);
    assert.deepEqual(fake.calls[0], { offset: blob.blob.length - tail, length: tail });
    assert.equal(layer.stats().openRequests, 1);
    assert.equal(layer.stats().openedFrom, 'network');
    assert.equal(layer.tocDigest, blob.result.tocDigest);
    await layer.close();
  });

  it('needs exactly two requests when the TOC starts before the tail, and refetches no byte twice', async () => {
    const blob = await manyFilesBlob(3000);
    const tocLength = blob.blob.length - blob.result.tocOffset;
    assert.ok(tocLength > 8192, `TOC member is ${tocLength} bytes`);
    const { layer, fake } = await openTestLayer(blob, { tailSize: 4096 });
    assert.equal(fake.calls.length, 2);
    const [tail, head] = fake.calls;
    assert.deepEqual(tail, { offset: blob.blob.length - 4096, length: 4096 });
    assert.deepEqual(head, { offset: blob.result.tocOffset, length: blob.blob.length - 4096 - blob.result.tocOffset });
    assert.equal(layer.lookup('/dir3/file-with-a-longish-name-2993.txt')?.size, 'file 2993\n'.length);
    await layer.close();
  });

  it('learns the size from one tail read when the caller does not know it (no HEAD)', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob, { size: undefined });
    assert.equal(fake.sizeLookups, 0);
    assert.equal(fake.calls.length, 1);
    const tail = Math.min(blob.blob.length, DEFAULT_TAIL_SIZE);
    assert.deepEqual(fake.calls[0], { offset: blob.blob.length - tail, length: tail });
    assert.equal(layer.lookup('/a/small.txt')?.type, 'reg');
    // The size learnt is the one the whole-blob check uses: the background fetch verifies the blob.
    const result = await layer.startBackgroundFetch();
    assert.equal(result.blob.outcome, 'verified');
    assert.equal(fake.sizeLookups, 0);
    await layer.close();
  });

  it('falls back to a size lookup when the fetcher has no tail read', async () => {
    const blob = await standardBlob();
    const fake = new FakeFetcher(blob.blob);
    const { tail: _tail, ...withoutTail } = fake.fetch;
    const fetcher = Object.assign((offset: number, length: number, signal: AbortSignal) => fake.fetch(offset, length, signal), withoutTail);
    const { layer } = await openTestLayer(blob, { size: undefined, fetcher });
    assert.equal(fake.sizeLookups, 1);
    assert.equal(fake.calls.length, 1);
    await layer.close();
  });

  it('rejects a TOC that does not match the expected digest', async () => {
    const blob = await standardBlob();
    await assert.rejects(openTestLayer(blob, { expectedTocDigest: `sha256:${'0'.repeat(64)}` }), TocDigestMismatchError);
  });

  it('refuses to open without a TOC digest unless unverified layers are allowed', async () => {
    const blob = await standardBlob();
    const fake = new FakeFetcher(blob.blob);
    await assert.rejects(openTestLayer(blob, { fake, expectedTocDigest: undefined }), UnverifiedLayerError);
    assert.equal(fake.calls.length, 0, 'refused before any request');
    const dir = tempDir('unverified');
    try {
      const { layer } = await openTestLayer(blob, { expectedTocDigest: undefined, allowUnverified: true, tocCacheDir: dir.path });
      assert.deepEqual(await layer.read(layer.lookup('/a/small.txt')!, 0, 100), contentOf(blob.files, 'a/small.txt'));
      assert.equal(existsSync(join(dir.path, 'sha256')), false, 'an unverified TOC is not cached');
      await layer.close();
    } finally {
      dir.remove();
    }
  });

  it('rejects blobs that are not eStargz', async () => {
    const plain = gzipSync(Buffer.alloc(10_000, 1));
    const blob: TestBlob = { files: [], blob: plain, result: { compressedDigest: `sha256:${'1'.repeat(64)}`, tocDigest: `sha256:${'2'.repeat(64)}` } as TestBlob['result'] };
    await assert.rejects(openTestLayer(blob), InvalidTocError);
  });

  it('gives up within the deadline when the registry does not answer', async () => {
    const blob = await standardBlob();
    const fake = new FakeFetcher(blob.blob);
    fake.mode = 'hang';
    const started = Date.now();
    const err = await openTestLayer(blob, { fake, fetchTimeoutMs: 200 }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof LayerFetchError && err.timedOut, String(err));
    assert.ok(Date.now() - started < 1500);
  });

  it('keeps the blob size with a cached TOC, so a reopened layer checks its blob without a size lookup', async () => {
    const dir = tempDir('toccache-size');
    try {
      const blob = await standardBlob();
      const first = await openTestLayer(blob, { tocCacheDir: dir.path, size: undefined });
      await first.layer.close();
      const second = await openTestLayer(blob, { tocCacheDir: dir.path, size: undefined });
      assert.equal(second.layer.stats().openedFrom, 'toc-cache');
      const result = await second.layer.startBackgroundFetch();
      assert.equal(result.blob.outcome, 'verified');
      assert.equal(second.fake.sizeLookups, 0, 'the size came from the TOC cache, not from a HEAD');
      await second.layer.close();
    } finally {
      dir.remove();
    }
  });

  it('opens from the TOC cache without any request, and ignores a damaged cache file', async () => {
    const dir = tempDir('toccache');
    try {
      const blob = await standardBlob();
      const first = await openTestLayer(blob, { tocCacheDir: dir.path });
      await first.layer.close();
      const path = join(dir.path, 'sha256', blob.result.tocDigest.slice(7));
      assert.ok(existsSync(path));

      const dead = new FakeFetcher(blob.blob);
      dead.mode = 'fail';
      const second = await openTestLayer(blob, { tocCacheDir: dir.path, fake: dead });
      assert.equal(dead.calls.length, 0);
      assert.equal(second.layer.stats().openedFrom, 'toc-cache');
      assert.equal(second.layer.lookup('/a/hl')?.ino, second.layer.lookup('/a/big.bin')!.ino);
      assert.deepEqual(second.layer.index.allChunks(), first.layer.index.allChunks(), 'same chunks, same compressed ends');
      await second.layer.close();

      // Flip a byte of the cached JSON: the digest no longer matches, so the network is used again.
      const bytes = readFileSync(path);
      bytes[bytes.length - 10]! ^= 0x01;
      writeFileSync(path, bytes);
      const third = await openTestLayer(blob, { tocCacheDir: dir.path });
      assert.equal(third.layer.stats().openedFrom, 'network');
      assert.equal(third.fake.calls.length, 1);
      await third.layer.close();
      const fourth = await openTestLayer(blob, { tocCacheDir: dir.path, fake: dead });
      assert.equal(fourth.layer.stats().openedFrom, 'toc-cache', 'the damaged file was replaced');
      await fourth.layer.close();

      // A cached TOC is only used for the blob it came from.
      const other = await openTestLayer(blob, { tocCacheDir: dir.path, digest: `sha256:${'f'.repeat(64)}` });
      assert.equal(other.layer.stats().openedFrom, 'network');
      await other.layer.close();
    } finally {
      dir.remove();
    }
  });
});
