import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import {
  ChunkDecodeError, ChunkDigestMismatchError, chunksForRange, encodeLegacyFooter, inflateChunk, openEstargz, parseTocIndex, verifyChunk,
  type FileChunk, type TocNode,
} from '../../../src/estargz/index.js';
import { encodeTarHeader, paddingFor, simpleFileHeader } from '../../../src/estargz/tar.js';
import { encodeTocJson, tocMemberPayload } from '../../../src/estargz/toc.js';
import { encodeFooter } from '../../../src/estargz/footer.js';
import { convert, extractTar, packTar, validToc } from './helpers.js';

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function fileNode(size: number, chunkSize: number): TocNode {
  const chunks: FileChunk[] = [];
  for (let off = 0; off < size; off += chunkSize) {
    chunks.push({ fileName: 'f', chunkOffset: off, chunkSize: Math.min(chunkSize, size - off), offset: off * 2, compressedEnd: off * 2 + 1, innerOffset: 0, chunkDigest: undefined });
  }
  return { size, chunks } as unknown as TocNode;
}

describe('chunk range mapping', () => {
  const index = parseTocIndex(Buffer.from(JSON.stringify(validToc())), { tocOffset: 1000 });
  const file = index.lookup('a/f')!;

  it('maps file ranges to the chunks that hold them', () => {
    const offsets = (offset: number, length: number): number[] => chunksForRange(file, offset, length).map((c) => c.chunkOffset);
    assert.deepEqual(offsets(0, 1), [0]);
    assert.deepEqual(offsets(3, 2), [0, 4]);
    assert.deepEqual(offsets(4, 4), [4]);
    assert.deepEqual(offsets(7, 2), [4, 8]);
    assert.deepEqual(offsets(0, 100), [0, 4, 8]);
    assert.deepEqual(offsets(9, 5), [8]);
    assert.deepEqual(offsets(10, 1), []);
    assert.deepEqual(offsets(5, 0), []);
    assert.deepEqual(index.chunksForRange(file, 8, 2), chunksForRange(file, 8, 2));
    assert.throws(() => chunksForRange(file, -1, 1), RangeError);
    assert.throws(() => chunksForRange(file, 0, Number.NaN), RangeError);
  });

  it('records compressed offsets, ends and sizes of every chunk', () => {
    assert.deepEqual(file.chunks.map((c) => [c.chunkOffset, c.chunkSize, c.offset, c.compressedEnd]), [[0, 4, 100, 300], [4, 4, 300, 500], [8, 2, 500, 1000]]);
    assert.equal(index.lookup('a/hl')!.ino, file.ino, 'hardlinks share the node of their target');
    assert.deepEqual(index.lookup('a/hl')!.chunks, file.chunks, 'and its chunks');
    assert.deepEqual(index.allChunks().map((c) => c.offset), [100, 300, 500]);
  });

  it('agrees with a brute-force scan for any file and range', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 1, max: 700 }), fc.nat(6000), fc.oneof(fc.nat(6000), fc.constant(0)), (size, chunkSize, offset, length) => {
        const node = fileNode(size, chunkSize);
        const end = Math.min(offset + length, size);
        const expected = end <= offset ? [] : node.chunks.filter((c) => c.chunkOffset < end && c.chunkOffset + c.chunkSize > offset);
        assert.deepEqual(chunksForRange(node, offset, length), expected);
      }),
      { numRuns: 500, includeErrorInReport: true },
    );
  });
});

describe('chunk verification', () => {
  it('inflates and verifies chunks, and reassembles any range', async () => {
    const content = Buffer.from(Array.from({ length: 50_000 }, (_, i) => (i * 7) % 256));
    const { blob } = await convert(await packTar([{ name: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1, content }]), { chunkSize: 3000 });
    const index = await openEstargz(blob);
    const file = index.lookup('f')!;
    await fc.assert(
      fc.asyncProperty(fc.nat(content.length), fc.nat(9000), async (offset, length) => {
        const chunks = chunksForRange(file, offset, length);
        const datas = await Promise.all(chunks.map((c) => inflateChunk(blob.subarray(c.offset, c.compressedEnd), c)));
        const joined = Buffer.concat(datas);
        const start = chunks[0]?.chunkOffset ?? 0;
        assert.deepEqual(joined.subarray(offset - start, offset - start + length), content.subarray(offset, offset + length));
      }),
      { numRuns: 50 },
    );
  });

  it('throws ChunkDigestMismatchError carrying the digests when content differs', async () => {
    const data = Buffer.from('hello chunk');
    const chunk: FileChunk = { fileName: 'x/y', chunkOffset: 4096, chunkSize: data.length, offset: 0, compressedEnd: 100, innerOffset: 0, chunkDigest: sha256(Buffer.from('something else')) };
    await assert.rejects(inflateChunk(gzipSync(data), chunk), (err: unknown) => {
      assert.ok(err instanceof ChunkDigestMismatchError);
      assert.equal(err.expected, chunk.chunkDigest);
      assert.equal(err.actual, sha256(data));
      assert.equal(err.fileName, 'x/y');
      assert.equal(err.chunkOffset, 4096);
      return true;
    });
    assert.throws(() => verifyChunk(data, chunk), ChunkDigestMismatchError);
    verifyChunk(data, { ...chunk, chunkDigest: sha256(data) });
    assert.deepEqual(await inflateChunk(gzipSync(data), { ...chunk, chunkDigest: sha256(data) }), data);
  });

  it('throws ChunkDecodeError for corrupt or short gzip data', async () => {
    const data = Buffer.alloc(1000, 3);
    const chunk: FileChunk = { fileName: 'f', chunkOffset: 0, chunkSize: 1000, offset: 0, compressedEnd: 50, innerOffset: 0, chunkDigest: sha256(data) };
    const gz = gzipSync(data);
    await assert.rejects(inflateChunk(gz.subarray(0, gz.length - 12), chunk), ChunkDecodeError);
    await assert.rejects(inflateChunk(Buffer.from('definitely not gzip'), chunk), ChunkDecodeError);
    await assert.rejects(inflateChunk(gzipSync(data.subarray(0, 999)), chunk), ChunkDecodeError);
    const flipped = Buffer.from(gz);
    flipped[15] = flipped[15]! ^ 0xff;
    await assert.rejects(inflateChunk(flipped, chunk), (err: unknown) => err instanceof ChunkDecodeError || err instanceof ChunkDigestMismatchError);
  });

  it('stops inflating once the chunk is out, whatever follows in the range', async () => {
    const data = Buffer.alloc(100, 1);
    const bomb = gzipSync(Buffer.alloc(50 << 20));
    const chunk: FileChunk = { fileName: 'f', chunkOffset: 0, chunkSize: 100, offset: 0, compressedEnd: 0, innerOffset: 0, chunkDigest: sha256(data) };
    assert.deepEqual(await inflateChunk(Buffer.concat([gzipSync(data), bomb]), chunk), data);
  });

  it('inflates chunks larger than one inflate step, from any inner offset', async () => {
    // 2.5 MiB of incompressible-ish bytes: the chunk arrives in several 1 MiB steps,
    // and an inner offset past the first step still yields exactly the chunk.
    const before = Buffer.alloc(1_300_000, 9);
    const data = Buffer.from(Array.from({ length: 2_621_440 }, (_, i) => (i * 2654435761) >>> 24));
    const member = gzipSync(Buffer.concat([before, data, Buffer.alloc(4096, 1)]));
    const chunk: FileChunk = { fileName: 'big', chunkOffset: 0, chunkSize: data.length, offset: 0, compressedEnd: member.length, innerOffset: before.length, chunkDigest: sha256(data) };
    assert.deepEqual(await inflateChunk(member, chunk), data);
    await assert.rejects(inflateChunk(member, { ...chunk, innerOffset: before.length - 1 }), ChunkDigestMismatchError);
  });

  it('reads files packed into one gzip member through innerOffset', async () => {
    // Newer stargz-snapshotter writers (minChunkSize) put small files in one member;
    // each file's offset names the member and innerOffset where its data starts.
    const files = [Buffer.from('first file\n'), Buffer.from('second, packed right after\n')];
    const parts: Buffer[] = [];
    const inner: number[] = [];
    let pos = 0;
    for (const [i, data] of files.entries()) {
      const header = encodeTarHeader(simpleFileHeader(`f${i}`, data.length));
      parts.push(header);
      pos += header.length;
      inner.push(pos);
      parts.push(data, Buffer.alloc(paddingFor(data.length)));
      pos += data.length + paddingFor(data.length);
    }
    const packed = gzipSync(Buffer.concat(parts));
    const third = Buffer.from('third, own member\n');
    const thirdHeader = gzipSync(encodeTarHeader(simpleFileHeader('f2', third.length)));
    const thirdData = gzipSync(Buffer.concat([third, Buffer.alloc(paddingFor(third.length))]));
    const tocOffset = packed.length + thirdHeader.length + thirdData.length;
    const json = encodeTocJson({
      version: 1,
      entries: [
        { name: 'f0', type: 'reg', size: files[0]!.length, offset: 0, innerOffset: inner[0], chunkDigest: sha256(files[0]!) },
        { name: 'f1', type: 'reg', size: files[1]!.length, offset: 0, innerOffset: inner[1], chunkDigest: sha256(files[1]!) },
        { name: 'f2', type: 'reg', size: third.length, offset: packed.length + thirdHeader.length, chunkDigest: sha256(third) },
      ],
    });
    const blob = Buffer.concat([packed, thirdHeader, thirdData, gzipSync(tocMemberPayload(json)), encodeFooter(tocOffset)]);
    assert.deepEqual((await extractTar(gunzipSync(blob))).map((e) => e.name), ['f0', 'f1', 'f2', 'stargz.index.json']);
    const index = await openEstargz(blob);
    for (const [i, data] of [...files, third].entries()) {
      const [chunk] = index.lookup(`f${i}`)!.chunks;
      assert.equal(chunk!.compressedEnd, i < 2 ? packed.length + thirdHeader.length : tocOffset);
      assert.deepEqual(await inflateChunk(blob.subarray(chunk!.offset, chunk!.compressedEnd), chunk!), data);
    }
  });

  it('reads blobs that end with a legacy stargz footer', async () => {
    const { blob, result } = await convert(await packTar([{ name: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1, content: Buffer.from('legacy') }]));
    const legacy = Buffer.concat([blob.subarray(0, blob.length - 51), encodeLegacyFooter(result.tocOffset)]);
    const index = await openEstargz(legacy, { expectedTocDigest: result.tocDigest });
    const [chunk] = index.lookup('f')!.chunks;
    assert.deepEqual(await inflateChunk(legacy.subarray(chunk!.offset, chunk!.compressedEnd), chunk!), Buffer.from('legacy'));
  });
});
