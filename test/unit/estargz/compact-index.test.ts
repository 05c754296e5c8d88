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

  it('keeps a few hundred bytes per entry at most', () => {
    const tree = FsTree.fromIndex(index);
    const perEntry = (index.estimatedBytes + tree.estimatedBytes) / entries.length;
    assert.ok(perEntry < 300, `${perEntry.toFixed(0)} bytes per entry`);
  });
});
