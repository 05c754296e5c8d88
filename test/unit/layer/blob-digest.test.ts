// A lazy layer has verified its TOC, not its blob: the background fetch walks
// the whole blob in order and checks it against the blob digest. A blob whose
// bytes do not hash to its digest (while every chunk still matches its TOC) is
// poisoned once fully fetched: every read fails from then on.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { ChunkCache, LayerPoisonedError, type BlobFetcher } from '../../../src/layer/index.js';
import { FakeFetcher, openTestLayer, standardBlob, type TestBlob } from './fixtures.js';

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const regularFiles = (blob: TestBlob) => blob.files.filter((f) => (f.type ?? 'file') === 'file' && !f.name.includes('.wh.'));

/**
 * The same blob with one byte of the first gzip member's header (its MTIME field)
 * changed: gzip does not check header bytes, so every chunk and the TOC still
 * inflate to what the TOC promises, but the blob no longer hashes to its digest.
 */
function tamperedHeader(blob: Buffer): Buffer {
  assert.equal(blob[0], 0x1f, 'blob starts with a gzip member');
  assert.equal(blob[3]! & 0x02, 0, 'no header CRC that would catch the change');
  const copy = Buffer.from(blob);
  copy[4] = copy[4]! ^ 0x5a;
  return copy;
}

/** Answers later requests faster than earlier ones, so ranges arrive out of order; counts overlap. */
function outOfOrder(fake: FakeFetcher): BlobFetcher & { maxInFlight: number } {
  let inFlight = 0;
  const fetcher = Object.assign(async (offset: number, length: number, signal: AbortSignal) => {
    inFlight++;
    fetcher.maxInFlight = Math.max(fetcher.maxInFlight, inFlight);
    try {
      await new Promise((r) => setTimeout(r, offset === 0 ? 80 : 1));
      return await fake.fetch(offset, length, signal);
    } finally {
      inFlight--;
    }
  }, { size: fake.fetch.size, maxInFlight: 0 });
  return fetcher;
}

describe('blob digest check by the background fetch', () => {
  it('walks [0, size) in contiguous ranges split at chunk starts and verifies a correct blob', async () => {
    const blob = await standardBlob();
    const { layer, fake, logger } = await openTestLayer(blob, { backgroundRangeBytes: 100 * 1024, backgroundFetchConcurrency: 2 });
    try {
      fake.reset();
      const result = await layer.startBackgroundFetch();
      assert.deepEqual(result.blob, { outcome: 'verified', digest: blob.result.compressedDigest });
      assert.equal(result.complete, true);
      assert.equal(layer.isBlobVerified, true);
      assert.equal(layer.poisoned, undefined);
      const calls = [...fake.calls].sort((a, b) => a.offset - b.offset);
      const starts = new Set(layer.index.allChunks().map((c) => c.offset));
      let end = 0;
      for (const call of calls) {
        assert.equal(call.offset, end, 'ranges are contiguous, none twice');
        assert.ok(call.offset === 0 || starts.has(call.offset), `range at ${call.offset} starts at a chunk`);
        end = call.offset + call.length;
      }
      assert.equal(end, blob.blob.length, 'the last range ends with the footer');
      assert.ok(calls.length >= 4, `${calls.length} ranges`);
      assert.ok(logger.lines.some((l) => l.level === 'debug' && /matches its digest/.test(l.msg ?? '')));
      for (const f of regularFiles(blob)) {
        const node = layer.lookup(`/${f.name}`)!;
        assert.deepEqual(await layer.read(node, 0, node.size), f.data);
      }
    } finally {
      await layer.close();
    }
  });

  it('hashes in blob order when ranges arrive out of order', async () => {
    const blob = await standardBlob();
    const fake = new FakeFetcher(blob.blob);
    const fetcher = outOfOrder(fake);
    const { layer } = await openTestLayer(blob, { fake, fetcher, backgroundRangeBytes: 64 * 1024, backgroundFetchConcurrency: 3 });
    try {
      fake.reset();
      const result = await layer.startBackgroundFetch();
      assert.equal(result.blob.outcome, 'verified');
      assert.equal(fetcher.maxInFlight, 3, 'requests overlapped');
      assert.notEqual(fake.calls[0]!.offset, 0, 'the first range was answered last');
    } finally {
      await layer.close();
    }
  });

  it('poisons a layer whose bytes match its TOC but not its digest: every read then fails', async () => {
    const blob = await standardBlob();
    const bad = tamperedHeader(blob.blob);
    assert.notEqual(sha256(bad), blob.result.compressedDigest);
    const fake = new FakeFetcher(bad);
    const { layer, logger } = await openTestLayer(blob, { fake, backgroundRangeBytes: 100 * 1024 });
    try {
      // Lazily, nothing is wrong yet: the chunk matches the verified TOC.
      const small = layer.lookup('/a/small.txt')!;
      assert.equal((await layer.read(small, 0, 5)).toString(), 'hello');
      const result = await layer.startBackgroundFetch();
      assert.deepEqual(result.blob, { outcome: 'mismatch', expected: blob.result.compressedDigest, actual: sha256(bad) });
      assert.ok(layer.poisoned instanceof LayerPoisonedError);
      assert.equal(layer.isBlobVerified, false);
      // Cached or not, no byte of it is served any more.
      for (const f of regularFiles(blob).filter((s) => s.data!.length > 0)) {
        await assert.rejects(layer.read(layer.lookup(`/${f.name}`)!, 0, 1), LayerPoisonedError, f.name);
      }
      const line = logger.lines.find((l) => l.level === 'error' && /poisoned/.test(l.msg ?? ''));
      assert.ok(line, 'an error is logged');
      assert.equal(line.obj['ref'], 'registry.test/lazysnap/fixture:1');
      assert.equal(line.obj['digest'], blob.result.compressedDigest);
      assert.equal(line.obj['expected'], blob.result.compressedDigest);
      assert.equal(line.obj['actual'], sha256(bad));
    } finally {
      await layer.close();
    }
  });

  it('poisons a layer served under another blob\'s digest, though its TOC digest is right', async () => {
    const blob = await standardBlob();
    const other = await standardBlob({ chunkSize: 32 * 1024 });
    assert.notEqual(other.result.compressedDigest, blob.result.compressedDigest);
    const { layer } = await openTestLayer(blob, { digest: other.result.compressedDigest });
    try {
      const result = await layer.startBackgroundFetch();
      assert.equal(result.blob.outcome, 'mismatch');
      await assert.rejects(layer.read(layer.lookup('/mid.bin')!, 0, 10), LayerPoisonedError);
    } finally {
      await layer.close();
    }
  });

  it('re-fetches cached chunks\' bytes for the hash but does not inflate them again', async () => {
    const blob = await standardBlob();
    const cache = ChunkCache.inMemory(64 << 20);
    const first = await openTestLayer(blob, { cache, blobVerified: true });
    assert.equal((await first.layer.startBackgroundFetch()).complete, true);
    await first.layer.close();
    const { layer } = await openTestLayer(blob, { cache });
    try {
      const bytesBefore = layer.stats().bytesFetched;
      const result = await layer.startBackgroundFetch();
      assert.equal(result.blob.outcome, 'verified');
      assert.equal(layer.stats().chunksFetched, 0, 'no cached chunk inflated again');
      assert.equal(layer.stats().bytesFetched - bytesBefore, blob.blob.length, 'the whole blob was fetched once, for the hash');
    } finally {
      await layer.close();
    }
  });

  it('a layer already verified whole fetches only missing chunks and is not hashed again', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob, { blobVerified: true });
    try {
      fake.reset();
      const result = await layer.startBackgroundFetch();
      assert.equal(result.blob.outcome, 'unchecked');
      assert.equal(result.complete, true);
      const tocOffset = layer.index.tocOffset;
      assert.ok(fake.calls.every((c) => c.offset + c.length <= tocOffset), 'neither TOC nor footer fetched');
      assert.equal(layer.isBlobVerified, true);
    } finally {
      await layer.close();
    }
  });

  it('a blob it could not fetch whole stays unchecked, not poisoned', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob);
    try {
      fake.mode = 'fail';
      const result = await layer.startBackgroundFetch();
      assert.equal(result.blob.outcome, 'unchecked');
      assert.equal(layer.poisoned, undefined);
      fake.mode = 'ok';
      assert.deepEqual(await layer.read(layer.lookup('/etc/keep.conf')!, 0, 100), Buffer.from('keep=1\n'));
    } finally {
      await layer.close();
    }
  });
});
