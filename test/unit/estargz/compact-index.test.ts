// The compact index answers exactly what the TOC says: every entry found by
// path with its fields, directories listed in TOC order, chunk ranges and
// compressed ends as a direct reading of the JSON gives them, the file tree
// over it agreeing, and memory per entry small.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { chunksForRange, parseTocIndex, type TocEntryJson, type TocJson } from '../../../src/estargz/index.js';
import { FsTree } from '../../../src/layer/index.js';
import { manyEntryTocJson } from '../../bench/many-entry-toc.js';

const TOC_OFFSET = 1 << 30;

function parentOf(name: string): string {
  return name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '';
}

describe('compact TOC index', () => {
  const json = manyEntryTocJson(5_000, TOC_OFFSET);
  const toc = JSON.parse(json.toString('utf8')) as TocJson;
  const index = parseTocIndex(json, { tocOffset: TOC_OFFSET });
  const entries = toc.entries.map((e) => ({ ...e, name: e.name.replace(/\/$/, '') }));

  it('finds every entry by path with the fields the TOC gives it', () => {
    for (const e of entries) {
      const node = index.lookup(e.name);
      assert.ok(node !== undefined, e.name);
      assert.equal(node.name, e.name);
      assert.equal(node.type, e.type);
      assert.equal(node.size, e.size ?? 0);
      assert.equal(node.mode, e.mode);
      assert.equal(node.mtimeMs, Date.parse(e.modtime!));
      assert.equal(node.digest, e.digest);
      assert.equal(node.chunks.length, (e.size ?? 0) > 0 ? 1 : 0);
      assert.equal(index.lookup(`/${e.name}/`)?.ino, node.ino);
    }
    assert.equal(index.lookup('d0000/nothing'), undefined);
    assert.equal(index.lookup('d0000/f0000001/x'), undefined);
  });

  it('lists directories in TOC order, in the index and in the file tree', () => {
    const expected = new Map<string, string[]>();
    for (const e of entries) {
      const parent = parentOf(e.name);
      expected.set(parent, [...(expected.get(parent) ?? []), e.name.slice(e.name.lastIndexOf('/') + 1)]);
    }
    const tree = FsTree.fromIndex(index);
    for (const [dir, names] of expected) {
      assert.deepEqual([...index.lookup(dir)!.children!.keys()], names, dir);
      assert.deepEqual([...tree.lookup(`/${dir}`)!.children!.keys()], names, dir);
    }
    assert.equal(index.pathCount, entries.length + 1);
    assert.equal(tree.inodeCount, entries.length + 1);
    assert.equal(tree.lookup('/d0001')!.nlink, 2);
    assert.equal(tree.root.nlink, 2 + expected.get('')!.length);
  });

  it('gives each chunk the compressed end the next data offset sets, and orders allChunks by offset', () => {
    const offsets = entries.filter((e) => (e.size ?? 0) > 0).map((e) => e.offset ?? 0).sort((a, b) => a - b);
    const all = index.allChunks();
    assert.deepEqual(all.map((c) => c.offset), offsets);
    all.forEach((c, i) => assert.equal(c.compressedEnd, offsets[i + 1] ?? TOC_OFFSET));
    assert.deepEqual([...index.chunksByOffset()], all);
    assert.equal(index.chunkCount, offsets.length);
  });

  it('maps byte ranges to the same chunks as the chunk list does', () => {
    const toc2: TocEntryJson[] = [{ name: 'f', type: 'reg', size: 1000, offset: 10, chunkSize: 300, chunkDigest: `sha256:${'a'.repeat(64)}` }];
    for (let at = 300, off = 20; at < 1000; at += 300, off += 10) toc2.push({ name: 'f', type: 'chunk', offset: off, chunkOffset: at, chunkSize: Math.min(300, 1000 - at), chunkDigest: `sha256:${'b'.repeat(63)}${at % 10}` });
    const small = parseTocIndex(Buffer.from(JSON.stringify({ version: 1, entries: toc2 })), { tocOffset: 100 });
    const file = small.lookup('f')!;
    const plain = { size: file.size, chunks: file.chunks } as unknown as typeof file;
    fc.assert(fc.property(fc.nat(1100), fc.nat(1100), (offset, length) => {
      assert.deepEqual(chunksForRange(file, offset, length), chunksForRange(plain, offset, length));
    }), { numRuns: 300 });
    assert.deepEqual(file.chunks.map((c) => [c.chunkOffset, c.chunkSize, c.offset, c.compressedEnd]), [[0, 300, 10, 20], [300, 300, 20, 30], [600, 300, 30, 40], [900, 100, 40, 100]]);
  });

  it('lists the chunks stored after a chunk in blob order, bounded by end and count, packed members included', () => {
    const digest = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;
    // In blob order: a [10, 20), then b and c packed in one member at 20, then d's two chunks [40, 50) and [50, 90), the TOC at 90.
    // The TOC lists them in another order, so blob order is not TOC order.
    const toc3: TocEntryJson[] = [
      { name: 'd', type: 'reg', size: 200, offset: 40, chunkSize: 100, chunkDigest: digest(4) },
      { name: 'd', type: 'chunk', offset: 50, chunkOffset: 100, chunkSize: 100, chunkDigest: digest(5) },
      { name: 'a', type: 'reg', size: 5, offset: 10, chunkDigest: digest(1) },
      { name: 'c', type: 'reg', size: 5, offset: 20, innerOffset: 600, chunkDigest: digest(3) },
      { name: 'b', type: 'reg', size: 5, offset: 20, innerOffset: 0, chunkDigest: digest(2) },
    ];
    const idx = parseTocIndex(Buffer.from(JSON.stringify({ version: 1, entries: toc3 })), { tocOffset: 90 });
    const first = (name: string) => idx.lookup(name)!.chunks[0]!;
    const names = (chunks: readonly { fileName: string; chunkOffset: number }[]) => chunks.map((c) => `${c.fileName}@${c.chunkOffset}`);
    assert.deepEqual(names(idx.chunksAfter(first('a'), 90, 10)), ['b@0', 'c@0', 'd@0', 'd@100']);
    assert.deepEqual(names(idx.chunksAfter(first('b'), 90, 10)), ['c@0', 'd@0', 'd@100'], 'the next member of a packed gzip member comes next');
    assert.deepEqual(names(idx.chunksAfter(first('a'), 50, 10)), ['b@0', 'c@0', 'd@0'], 'd@100 ends at 90, past the bound');
    assert.deepEqual(names(idx.chunksAfter(first('a'), 90, 2)), ['b@0', 'c@0']);
    assert.deepEqual(names(idx.chunksAfter(idx.lookup('d')!.chunks[1]!, 1000, 10)), [], 'nothing after the last chunk');
    assert.deepEqual(names(idx.chunksAfter(first('a'), 19, 10)), [], 'b and c end at 40');
  });

  it('keeps a few hundred bytes per entry at most', () => {
    const tree = FsTree.fromIndex(index);
    const perEntry = (index.estimatedBytes + tree.estimatedBytes) / entries.length;
    assert.ok(perEntry < 300, `${perEntry.toFixed(0)} bytes per entry`);
  });
});
