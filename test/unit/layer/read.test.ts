import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { ChunkDigestMismatchError, encodeFooter, encodeTocJson, encodeTocMember, openEstargz, type FileChunk, type TocEntryJson } from '../../../src/estargz/index.js';
import { encodeTarHeader, paddingFor, simpleFileHeader } from '../../../src/estargz/tar.js';
import {
  ChunkCache, ChunkVerificationError, InvalidReadError, LayerFetchError, LayerUnavailableError,
} from '../../../src/layer/index.js';
import { CHUNK, FakeFetcher, buildBlob, contentOf, noise, openTestLayer, standardBlob, standardFiles, type FileSpec, type OpenedTestLayer, type TestBlob } from './fixtures.js';

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const regularFiles = (blob: TestBlob) => blob.files.filter((f) => (f.type ?? 'file') === 'file' && !f.name.includes('.wh.'));

/**
 * The layer served from a copy of its blob with bit 0x40 of one byte flipped:
 * the byte `at` picks in the first chunk of `file`.
 */
async function openWithFlippedBit(blob: TestBlob, file: string, at: (chunk: FileChunk) => number): Promise<OpenedTestLayer> {
  const { layer: probe } = await openTestLayer(blob);
  const chunk = probe.index.lookup(file)!.chunks[0]!;
  await probe.close();
  const corrupted = Buffer.from(blob.blob);
  corrupted[at(chunk)]! ^= 0x40;
  return openTestLayer(blob, { fake: new FakeFetcher(corrupted) });
}

describe('layer reads', () => {
  it('returns every file byte for byte at random offsets and lengths', async () => {
    const blob = await standardBlob();
    // A small memory cache keeps evicting, so reads go through fetch, cache hit and refetch paths.
    const { layer, fake } = await openTestLayer(blob, { cache: ChunkCache.inMemory(3 * CHUNK) });
    try {
      for (const f of regularFiles(blob)) {
        const node = layer.lookup(`/${f.name}`)!;
        assert.deepEqual(await layer.read(node, 0, node.size + 10), f.data, `whole ${f.name}`);
      }
      const files = regularFiles(blob).filter((f) => f.data!.length > 0);
      await fc.assert(
        fc.asyncProperty(fc.nat(files.length - 1), fc.double({ min: 0, max: 1.1, noNaN: true }), fc.nat(3 * CHUNK), async (which, where, length) => {
          const f = files[which]!;
          const data = f.data!;
          const offset = Math.floor(where * data.length);
          const got = await layer.read(layer.lookup(`/${f.name}`)!, offset, length);
          assert.deepEqual(got, data.subarray(offset, offset + length));
        }),
        { numRuns: 300 },
      );
      assert.ok(fake.calls.length > 0);
      const stats = layer.stats();
      assert.equal(stats.verificationFailures, 0);
      assert.ok(stats.bytesRead > 0);
    } finally {
      await layer.close();
    }
  });

  it('reads hardlinks through their target and handles empty files and EOF', async () => {
    const blob = await standardBlob();
    const { layer } = await openTestLayer(blob);
    try {
      assert.deepEqual(await layer.read(layer.lookup('/a/hl')!, 100, 50), contentOf(blob.files, 'a/big.bin').subarray(100, 150));
      assert.equal((await layer.read(layer.lookup('/empty')!, 0, 10)).length, 0);
      const small = layer.lookup('/a/small.txt')!;
      assert.equal((await layer.read(small, small.size, 10)).length, 0);
      assert.equal((await layer.read(small, small.size + 1000, 10)).length, 0);
      assert.equal((await layer.read(small, 0, 0)).length, 0);
    } finally {
      await layer.close();
    }
  });

  it('refuses reads of non-files, foreign nodes and bad ranges', async () => {
    const blob = await standardBlob();
    const a = await openTestLayer(blob);
    const b = await openTestLayer(blob);
    try {
      await assert.rejects(a.layer.read(a.layer.lookup('/a')!, 0, 10), InvalidReadError);
      await assert.rejects(a.layer.read(a.layer.lookup('/a/sym')!, 0, 10), InvalidReadError);
      await assert.rejects(a.layer.read(b.layer.lookup('/a/small.txt')!, 0, 10), InvalidReadError);
      await assert.rejects(a.layer.read(a.layer.lookup('/a/small.txt')!, -1, 10), InvalidReadError);
      await assert.rejects(a.layer.read(a.layer.lookup('/a/small.txt')!, 0, 1.5), InvalidReadError);
    } finally {
      await a.layer.close();
      await b.layer.close();
    }
  });

  it('coalesces the missing chunks of one read into one range request', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob);
    try {
      const big = layer.lookup('/a/big.bin')!;
      const chunks = layer.index.lookup('a/big.bin')!.chunks;
      assert.equal(chunks.length, 6);
      fake.reset();
      assert.deepEqual(await layer.read(big, 0, big.size), contentOf(blob.files, 'a/big.bin'));
      assert.deepEqual(fake.calls, [{ offset: chunks[0]!.offset, length: chunks[5]!.compressedEnd - chunks[0]!.offset }]);
      // Cached chunks in the middle split the request around them.
      const tail = layer.lookup('/tail.bin')!;
      const tailChunks = layer.index.lookup('tail.bin')!.chunks;
      await layer.read(tail, CHUNK + 10, 10);
      fake.reset();
      await layer.read(tail, 0, tail.size);
      assert.deepEqual(fake.calls, [
        { offset: tailChunks[0]!.offset, length: tailChunks[0]!.compressedEnd - tailChunks[0]!.offset },
        { offset: tailChunks[2]!.offset, length: tailChunks[2]!.compressedEnd - tailChunks[2]!.offset },
      ]);
    } finally {
      await layer.close();
    }
  });

  it('bounds coalesced requests by maxRangeBytes', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob, { maxRangeBytes: 100 * 1024 });
    try {
      fake.reset();
      const big = layer.lookup('/a/big.bin')!;
      assert.deepEqual(await layer.read(big, 0, big.size), contentOf(blob.files, 'a/big.bin'));
      assert.equal(fake.calls.length, 5, 'each ~64 KiB chunk alone (two would pass 100 KiB); the 1234-byte last chunk rides with the one before');
      assert.ok(fake.calls.every((c) => c.length <= 100 * 1024));
    } finally {
      await layer.close();
    }
  });

  it('fetches identical chunks once (one cache key per content)', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob);
    try {
      fake.reset();
      const zeros = layer.lookup('/zeros.bin')!;
      assert.deepEqual(await layer.read(zeros, 0, zeros.size), Buffer.alloc(zeros.size));
      const requested = fake.calls.reduce((n, c) => n + c.length, 0);
      const chunks = layer.index.lookup('zeros.bin')!.chunks;
      assert.equal(new Set(chunks.map((c) => c.chunkDigest)).size, 2);
      assert.ok(requested < chunks[3]!.compressedEnd - chunks[0]!.offset, 'the repeated zero chunk is not fetched three times');
    } finally {
      await layer.close();
    }
  });

  it('makes one fetch for 20 concurrent reads of one chunk', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob);
    try {
      fake.reset();
      fake.delayMs = 30;
      const node = layer.lookup('/tail.bin')!;
      const expected = contentOf(blob.files, 'tail.bin');
      const reads = Array.from({ length: 20 }, (_, i) => layer.read(node, CHUNK + i * 100, 100 + i));
      const results = await Promise.all(reads);
      results.forEach((got, i) => assert.deepEqual(got, expected.subarray(CHUNK + i * 100, CHUNK + i * 100 + 100 + i)));
      assert.equal(fake.calls.length, 1);
      assert.equal(layer.stats().chunksFetched, 1);
    } finally {
      await layer.close();
    }
  });

  it('rejects a corrupted chunk with a typed error and one log line, and serves the rest', async () => {
    const blob = await standardBlob();
    const { layer, logger, fake } = await openWithFlippedBit(blob, 'mid.bin', (chunk) => chunk.offset + Math.floor((chunk.compressedEnd - chunk.offset) / 2));
    try {
      const mid = layer.lookup('/mid.bin')!;
      fake.reset();
      fake.delayMs = 20;
      const attempts = await Promise.allSettled(Array.from({ length: 5 }, () => layer.read(mid, 0, 100)));
      fake.delayMs = 0;
      for (const a of attempts) {
        assert.equal(a.status, 'rejected');
        assert.ok((a as PromiseRejectedResult).reason instanceof ChunkVerificationError, String((a as PromiseRejectedResult).reason));
      }
      const errors = logger.lines.filter((l) => l.level === 'error');
      assert.equal(errors.length, 1, 'one log line for one bad chunk fetch');
      assert.equal(errors[0]!.obj.ref, 'registry.test/lazysnap/fixture:1');
      assert.equal(errors[0]!.obj.digest, blob.result.compressedDigest);
      assert.equal(errors[0]!.obj.file, 'mid.bin');
      const err = (attempts[0] as PromiseRejectedResult).reason as ChunkVerificationError;
      assert.equal(err.fileName, 'mid.bin');
      assert.equal(err.digest, blob.result.compressedDigest);
      // Bad data is not cached: the next read fetches again, and fails again.
      const before = fake.calls.length;
      await assert.rejects(layer.read(mid, 10, 10), ChunkVerificationError);
      assert.equal(fake.calls.length, before + 1);
      assert.equal(layer.stats().verificationFailures, 2);
      // The other chunk of the file and the other files are fine.
      assert.deepEqual(await layer.read(mid, CHUNK, 7000), contentOf(blob.files, 'mid.bin').subarray(CHUNK));
      const big = layer.lookup('/a/big.bin')!;
      assert.deepEqual(await layer.read(big, 0, big.size), contentOf(blob.files, 'a/big.bin'));
      const tail = layer.lookup('/tail.bin')!;
      assert.deepEqual(await layer.read(tail, 0, tail.size), contentOf(blob.files, 'tail.bin'));
    } finally {
      await layer.close();
    }
  });

  it('rejects valid gzip that inflates to the wrong content (digest mismatch), never serving it', async () => {
    const blob = await standardBlob();
    // The same tree with one byte of mid.bin changed: incompressible data keeps every offset the same,
    // so its gzip member can be spliced into the original blob: valid gzip, wrong bytes.
    const files = standardFiles().map((f) => (f.name === 'mid.bin' ? { ...f, data: Buffer.from(f.data!) } : f));
    files.find((f) => f.name === 'mid.bin')!.data![100]! ^= 0x01;
    const other = await buildBlob(files);
    const { layer: probe } = await openTestLayer(blob);
    const chunk = probe.index.lookup('mid.bin')!.chunks[0]!;
    const otherIndex = await openEstargz(other.blob);
    assert.deepEqual(otherIndex.lookup('mid.bin')!.chunks[0]!.offset, chunk.offset);
    assert.deepEqual(otherIndex.lookup('mid.bin')!.chunks[0]!.compressedEnd, chunk.compressedEnd);
    await probe.close();
    const spliced = Buffer.from(blob.blob);
    other.blob.copy(spliced, chunk.offset, chunk.offset, chunk.compressedEnd);
    assert.notDeepEqual(spliced, blob.blob);
    const { layer, logger } = await openTestLayer(blob, { fake: new FakeFetcher(spliced) });
    try {
      const err = await layer.read(layer.lookup('/mid.bin')!, 0, 10).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof ChunkVerificationError, String(err));
      assert.ok(err.cause instanceof ChunkDigestMismatchError, String(err.cause));
      assert.equal(logger.lines.filter((l) => l.level === 'error').length, 1);
      assert.deepEqual(await layer.read(layer.lookup('/mid.bin')!, CHUNK, 10), contentOf(blob.files, 'mid.bin').subarray(CHUNK, CHUNK + 10));
    } finally {
      await layer.close();
    }
  });

  it('rejects within the deadline when the fetcher never answers, even if it ignores the signal', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob, { fetchTimeoutMs: 300 });
    try {
      fake.mode = 'hang';
      fake.honourSignal = false;
      const started = Date.now();
      const err = await layer.read(layer.lookup('/tail.bin')!, 0, 10).then(() => undefined, (e: unknown) => e);
      const took = Date.now() - started;
      assert.ok(err instanceof LayerFetchError, String(err));
      assert.equal(err.timedOut, true);
      assert.ok(took >= 250 && took < 1500, `rejected after ${took} ms`);
      assert.equal(layer.stats().fetchErrors, 1);
      // Nothing bad was remembered: the next read works once the source answers.
      fake.mode = 'ok';
      assert.deepEqual(await layer.read(layer.lookup('/tail.bin')!, 0, 10), contentOf(blob.files, 'tail.bin').subarray(0, 10));
    } finally {
      await layer.close();
    }
  });

  it('rejects with LayerFetchError when the source fails, then recovers', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob);
    try {
      fake.mode = 'fail';
      const err = await layer.read(layer.lookup('/mid.bin')!, 0, 10).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof LayerFetchError, String(err));
      assert.equal(err.timedOut, false);
      assert.match(String((err.cause as Error).message), /injected/);
      fake.mode = 'ok';
      assert.deepEqual(await layer.read(layer.lookup('/mid.bin')!, 0, 10), contentOf(blob.files, 'mid.bin').subarray(0, 10));
    } finally {
      await layer.close();
    }
  });

  it('close() rejects reads in flight and refuses new ones', async () => {
    const blob = await standardBlob();
    const { layer, fake } = await openTestLayer(blob, { fetchTimeoutMs: 30_000 });
    fake.mode = 'hang';
    const pending = layer.read(layer.lookup('/tail.bin')!, 0, 10);
    await new Promise((r) => setTimeout(r, 20));
    const started = Date.now();
    await layer.close();
    const err = await pending.then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof LayerFetchError && err.aborted, String(err));
    assert.ok(Date.now() - started < 1000);
    await assert.rejects(layer.read(layer.lookup('/mid.bin')!, 0, 10), LayerUnavailableError);
  });

  /** /etc's small files, then a file whose first chunk ends past a small read's neighbour window, then one more small file. */
  async function etcBlob(): Promise<TestBlob> {
    const files: FileSpec[] = [
      { name: 'etc/', type: 'directory' },
      { name: 'etc/group', data: Buffer.from('root:x:0:\n') },
      { name: 'etc/hostname', data: Buffer.from('box\n') },
      { name: 'etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n') },
      { name: 'far.bin', data: noise(7, 80 * 1024) },
      { name: 'after-far.txt', data: Buffer.from('beyond the window\n') },
    ];
    return { files, ...(await buildBlob(files)) };
  }

  it('fetches the small files stored right after a small read in the same request, so reading them next needs none', async () => {
    const blob = await etcBlob();
    const { layer, fake } = await openTestLayer(blob);
    try {
      fake.reset();
      assert.deepEqual(await layer.read(layer.lookup('/etc/group')!, 0, 4096), contentOf(blob.files, 'etc/group'));
      assert.equal(fake.calls.length, 1);
      const passwd = layer.index.lookup('etc/passwd')!.chunks[0]!;
      const [call] = fake.calls;
      assert.equal(call!.offset, layer.index.lookup('etc/group')!.chunks[0]!.offset);
      assert.equal(call!.offset + call!.length, passwd.compressedEnd, 'up to /etc/passwd, not into far.bin');
      assert.deepEqual(await layer.read(layer.lookup('/etc/passwd')!, 0, 4096), contentOf(blob.files, 'etc/passwd'));
      assert.deepEqual(await layer.read(layer.lookup('/etc/hostname')!, 0, 4096), contentOf(blob.files, 'etc/hostname'));
      assert.equal(fake.calls.length, 1, 'the neighbours came with the first read');
      assert.deepEqual(await layer.read(layer.lookup('/after-far.txt')!, 0, 4096), contentOf(blob.files, 'after-far.txt'));
      assert.equal(fake.calls.length, 2, 'a file past the window is fetched when read');
      // A read whose chunks are at hand fetches nothing, neighbours or not.
      await layer.read(layer.lookup('/etc/group')!, 0, 4096);
      assert.equal(fake.calls.length, 2);
      assert.equal(layer.stats().verificationFailures, 0);
    } finally {
      await layer.close();
    }
  });

  it('a bad neighbour fails no read but its own', async () => {
    const blob = await etcBlob();
    // Inside its gzip trailer: the CRC or length no longer matches.
    const { layer, fake } = await openWithFlippedBit(blob, 'etc/hostname', (chunk) => chunk.compressedEnd - 5);
    try {
      fake.reset();
      assert.deepEqual(await layer.read(layer.lookup('/etc/group')!, 0, 4096), contentOf(blob.files, 'etc/group'));
      assert.equal(fake.calls.length, 1);
      assert.deepEqual(await layer.read(layer.lookup('/etc/passwd')!, 0, 4096), contentOf(blob.files, 'etc/passwd'));
      assert.equal(fake.calls.length, 1, 'the good neighbour came with the first read');
      await assert.rejects(layer.read(layer.lookup('/etc/hostname')!, 0, 4096), ChunkVerificationError);
      assert.ok(layer.stats().verificationFailures >= 1, 'the bad neighbour was found out and counted');
    } finally {
      await layer.close();
    }
  });

  it('reads files packed into one gzip member (innerOffset)', async () => {
    // stargz-snapshotter packs small files into shared gzip members; our writer does not, so build one by hand.
    const d1 = Buffer.from('first packed file\n');
    const d2 = noise(9, 3000);
    const parts = [encodeTarHeader(simpleFileHeader('p1', d1.length)), d1, Buffer.alloc(paddingFor(d1.length))];
    const inner2 = parts.reduce((n, p) => n + p.length, 0) + 512;
    parts.push(encodeTarHeader(simpleFileHeader('p2', d2.length)), d2, Buffer.alloc(paddingFor(d2.length)));
    const member = gzipSync(Buffer.concat(parts));
    const entries: TocEntryJson[] = [
      { name: 'p1', type: 'reg', size: d1.length, mode: 0o644, offset: 0, innerOffset: 512, digest: sha256(d1), chunkDigest: sha256(d1) },
      { name: 'p2', type: 'reg', size: d2.length, mode: 0o644, offset: 0, innerOffset: inner2, digest: sha256(d2), chunkDigest: sha256(d2) },
    ];
    const json = encodeTocJson({ version: 1, entries });
    const blobBytes = Buffer.concat([member, await encodeTocMember(json), encodeFooter(member.length)]);
    const testBlob: TestBlob = {
      files: [],
      blob: blobBytes,
      result: { compressedDigest: sha256(blobBytes), tocDigest: sha256(json) } as TestBlob['result'],
    };
    const { layer, fake } = await openTestLayer(testBlob);
    try {
      fake.reset();
      assert.deepEqual(await layer.read(layer.lookup('/p2')!, 0, 5000), d2);
      assert.deepEqual(await layer.read(layer.lookup('/p1')!, 6, 6), d1.subarray(6, 12));
      assert.equal(fake.calls.length, 2);
      assert.deepEqual(fake.calls[0], { offset: 0, length: member.length });
    } finally {
      await layer.close();
    }
  });
});
