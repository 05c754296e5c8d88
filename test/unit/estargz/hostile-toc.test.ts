import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import {
  InvalidTocError, TocDigestMismatchError, TocIndex, encodeFooter, openEstargz, parseTocIndex, type TocErrorReason,
} from '../../../src/estargz/index.js';
import { encodeTarHeader, paddingFor, simpleFileHeader, END_OF_ARCHIVE } from '../../../src/estargz/tar.js';
import { SHA_A, SHA_B, blobWithToc, convert, packTar, validToc } from './helpers.js';

type Toc = ReturnType<typeof validToc>;

const parse = (toc: unknown, options: Parameters<typeof parseTocIndex>[1] = { tocOffset: 1000 }): TocIndex =>
  parseTocIndex(Buffer.from(typeof toc === 'string' ? toc : JSON.stringify(toc)), options);

function rejects(toc: unknown, reason: TocErrorReason, entryName?: string, options?: Parameters<typeof parseTocIndex>[1]): void {
  assert.throws(() => parse(toc, options), (err: unknown) => {
    assert.ok(err instanceof InvalidTocError, `expected InvalidTocError, got ${String(err)}`);
    assert.equal(err.reason, reason, err.message);
    if (entryName !== undefined) assert.equal(err.entryName, entryName);
    return true;
  });
}

function mutate(change: (toc: Toc) => void): Toc {
  const toc = validToc();
  change(toc);
  return toc;
}

describe('TOC validation', () => {
  it('accepts a valid TOC and fills in implied directories', () => {
    const index = parse(validToc());
    assert.equal(index.lookup('')?.type, 'dir');
    assert.equal(index.lookup('a')?.implicit, false);
    assert.deepEqual([...index.lookup('a')!.children!.keys()], ['f', 'hl', 's' + 'l']);
    const deep = parse({ version: 1, entries: [{ name: './x/y/z', type: 'fifo' }] });
    assert.equal(deep.lookup('x/y')?.implicit, true);
    assert.equal(deep.lookup('x')?.nlink, 3);
    assert.equal(deep.lookup('/x/y/z')?.type, 'fifo');
    assert.equal(deep.entryCount, 1);
  });

  it('normalizes names the way stargz-snapshotter does', () => {
    const index = parse({ version: 1, entries: [{ name: './', type: 'dir', mode: 0o700 }, { name: './b/', type: 'dir' }, { name: 'b//c/./d', type: 'fifo' }] });
    assert.equal(index.root.mode, 0o700);
    assert.equal(index.lookup('b/c/d')?.name, 'b/c/d');
    assert.equal(index.lookup('b/c')?.implicit, true);
  });

  it('carries user and group names forward per id, as writers elide repeats', () => {
    const index = parse({ version: 1, entries: [
      { name: 'a', type: 'fifo', uid: 5, gid: 6, userName: 'five', groupName: 'six' },
      { name: 'b', type: 'fifo', uid: 5, gid: 6 },
      { name: 'c', type: 'fifo', uid: 7, gid: 5 },
    ] });
    assert.deepEqual(['a', 'b', 'c'].map((n) => [index.lookup(n)!.userName, index.lookup(n)!.groupName]), [['five', 'six'], ['five', 'six'], ['', '']]);
  });

  it('rejects path traversal, absolute paths and NUL in names', () => {
    rejects(mutate((t) => { t.entries[0]!['name'] = 'a/../../etc/'; }), 'path-traversal', 'a/../../etc/');
    rejects(mutate((t) => { t.entries[5]!['name'] = '../x'; }), 'path-traversal', '../x');
    rejects(mutate((t) => { t.entries[0]!['name'] = '/etc/'; }), 'absolute-path', '/etc/');
    rejects(mutate((t) => { t.entries[5]!['name'] = 'a/s\u0000l'; }), 'nul-in-name');
    rejects(mutate((t) => { t.entries[4]!['linkName'] = '../../etc/shadow'; }), 'path-traversal', 'a/hl');
    rejects(mutate((t) => { t.entries[4]!['linkName'] = '/etc/shadow'; }), 'absolute-path', 'a/hl');
    rejects(mutate((t) => { t.entries[0]!['name'] = ''; }), 'empty-name');
    rejects(mutate((t) => { t.entries[5]!['name'] = 'n'.repeat(300); }), 'name-too-long');
  });

  it('rejects duplicate entries, however they are spelled', () => {
    rejects(mutate((t) => { t.entries.push({ name: './a//f', type: 'fifo' }); }), 'duplicate-entry', './a//f');
    rejects(mutate((t) => { t.entries.push({ name: 'a', type: 'dir' }); }), 'duplicate-entry');
  });

  it('rejects chunks that do not tile their file exactly', () => {
    rejects(mutate((t) => { t.entries[2]!['chunkOffset'] = 3; }), 'chunk-overlap');
    rejects(mutate((t) => { t.entries[2]!['chunkOffset'] = 5; }), 'chunk-gap');
    rejects(mutate((t) => { t.entries[3]!['chunkSize'] = 5; }), 'chunk-overflow');
    rejects(mutate((t) => { t.entries.splice(3, 1); }), 'chunk-incomplete', 'a/f');
    rejects(mutate((t) => { t.entries.splice(4, 0, { name: 'a/f', type: 'chunk', offset: 700, chunkOffset: 10, chunkDigest: SHA_A }); }), 'chunk-overflow');
    rejects(mutate((t) => { t.entries.splice(1, 0, { name: 'a/f', type: 'chunk', offset: 50, chunkOffset: 0, chunkDigest: SHA_A }); }), 'chunk-without-file');
    rejects(mutate((t) => { t.entries[2]!['name'] = 'a/other'; }), 'chunk-name-mismatch');
    rejects(mutate((t) => { t.entries[3]!['offset'] = 300; }), 'duplicate-chunk-offset');
    rejects({ version: 1, entries: [{ name: 'e', type: 'reg', chunkSize: 4 }] }, 'chunk-overflow');
  });

  it('rejects data offsets outside the blob', () => {
    rejects(mutate((t) => { t.entries[3]!['offset'] = 1000; }), 'offset-out-of-range');
    rejects(mutate((t) => { t.entries[3]!['offset'] = -5; }), 'bad-field');
    rejects(mutate((t) => { t.entries[1]!['innerOffset'] = 2 ** 40; }), 'offset-out-of-range');
  });

  it('rejects huge or malformed sizes', () => {
    rejects(mutate((t) => { t.entries[1]!['size'] = 2 ** 50; }), 'size-too-large');
    rejects(mutate((t) => { t.entries[1]!['size'] = 1e300; }), 'bad-field');
    rejects(mutate((t) => { t.entries[1]!['size'] = 10.5; }), 'bad-field');
    rejects(mutate((t) => { t.entries[1]!['size'] = '10'; }), 'bad-field');
    rejects({ version: 1, entries: [{ name: 'big', type: 'reg', size: 2 ** 30, chunkDigest: SHA_A }] }, 'size-too-large');
    rejects(mutate((t) => { t.entries[1]!['chunkSize'] = 2 ** 30; }), 'size-too-large');
    rejects(validToc(), 'too-many-entries', undefined, { tocOffset: 1000, limits: { maxEntries: 3 } });
    rejects(validToc(), 'toc-too-large', undefined, { tocOffset: 1000, limits: { maxTocJsonBytes: 100 } });
    rejects(mutate((t) => { t.entries[0]!['xattrs'] = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`user.${i}`, 'eA=='])); }), 'size-too-large');
  });

  it('rejects hardlinks to missing targets, directories and cycles', () => {
    rejects(mutate((t) => { t.entries[4]!['linkName'] = 'a/missing'; }), 'hardlink-missing-target', 'a/hl');
    rejects(mutate((t) => { t.entries[4]!['linkName'] = 'a'; }), 'hardlink-to-directory', 'a/hl');
    rejects(mutate((t) => { t.entries.push({ name: 'l1', type: 'hardlink', linkName: 'l2' }, { name: 'l2', type: 'hardlink', linkName: 'l1' }); }), 'hardlink-cycle');
    rejects(mutate((t) => { t.entries[4]!['linkName'] = ''; }), 'bad-field');
    const chained = parse(mutate((t) => { t.entries.push({ name: 'l1', type: 'hardlink', linkName: 'a/hl' }); }));
    assert.equal(chained.lookup('l1')!.ino, chained.lookup('a/f')!.ino);
    assert.equal(chained.lookup('a/f')!.nlink, 3);
  });

  it('rejects trees that cannot exist', () => {
    rejects(mutate((t) => { t.entries.push({ name: 'a/f/x', type: 'fifo' }); }), 'parent-not-directory', 'a/f/x');
    rejects(mutate((t) => { t.entries.push({ name: 'a/hl/x', type: 'fifo' }); }), 'parent-not-directory');
    rejects({ version: 1, entries: [{ name: './', type: 'fifo' }] }, 'root-not-directory');
    rejects({ version: 1, entries: [{ name: 'x', type: 'device' }] }, 'unknown-type');
    rejects({ version: 1, entries: [{ name: 'x' }] }, 'bad-field');
  });

  it('rejects malformed JSON and structure', () => {
    rejects('{"version": 1, "entries": [', 'malformed-json');
    rejects('', 'malformed-json');
    rejects('{"version":1} trailing', 'malformed-json');
    rejects([], 'bad-structure');
    rejects({ version: 1, entries: {} }, 'bad-structure');
    rejects({ version: 1, entries: [42] }, 'bad-structure');
    rejects({ version: 2, entries: [] }, 'unsupported-version');
    rejects({ entries: [] }, 'unsupported-version');
    rejects(mutate((t) => { t.entries[1]!['chunkDigest'] = 'sha256:xyz'; }), 'bad-field');
    rejects(mutate((t) => { t.entries[1]!['modtime'] = 'yesterday'; }), 'bad-field');
    rejects(mutate((t) => { t.entries[1]!['modtime'] = '2021-02-29T00:00:00Z'; }), 'bad-field');
    rejects(mutate((t) => { t.entries[1]!['xattrs'] = { 'user.a': '!!notbase64' }; }), 'bad-field');
    rejects(mutate((t) => { t.entries[1]!['xattrs'] = ['x']; }), 'bad-field');
    rejects(mutate((t) => { t.entries[1]!['uid'] = -1; }), 'bad-field');
    rejects(mutate((t) => { t.entries[1]!['mode'] = 2 ** 33; }), 'bad-field');
  });

  it('requires chunk digests unless told otherwise', () => {
    const toc = mutate((t) => { delete t.entries[2]!['chunkDigest']; });
    rejects(toc, 'missing-chunk-digest');
    assert.equal(parse(toc, { tocOffset: 1000, requireChunkDigests: false }).lookup('a/f')!.chunks[1]!.chunkDigest, undefined);
    const single = { version: 1, entries: [{ name: 'f', type: 'reg', size: 3, offset: 10, digest: SHA_B }] };
    assert.equal(parse(single).lookup('f')!.chunks[0]!.chunkDigest, SHA_B, 'an unchunked file may be verified by its file digest');
  });

  it('accepts timestamps Go accepts', () => {
    const index = parse(mutate((t) => { t.entries[1]!['modtime'] = '2020-01-02T03:04:05.5+01:00'; }));
    assert.equal(index.lookup('a/f')!.mtimeMs, Date.UTC(2020, 0, 2, 2, 4, 5, 500));
  });

  it('checks the TOC digest', () => {
    const json = Buffer.from(JSON.stringify(validToc()));
    const digest = `sha256:${createHash('sha256').update(json).digest('hex')}`;
    assert.equal(parseTocIndex(json, { tocOffset: 1000, expectedTocDigest: digest }).tocDigest, digest);
    assert.throws(() => parseTocIndex(json, { tocOffset: 1000, expectedTocDigest: SHA_A }), (err: unknown) => err instanceof TocDigestMismatchError && err.reason === 'toc-digest-mismatch' && err.actual === digest);
    const sha512 = `sha512:${createHash('sha512').update(json).digest('hex')}`;
    parseTocIndex(json, { tocOffset: 1000, expectedTocDigest: sha512 });
  });
});

describe('TOC reading from a blob', () => {
  const blobRejects = async (blob: Buffer, reason: TocErrorReason, options: Parameters<typeof openEstargz>[1] = {}): Promise<void> => {
    await assert.rejects(openEstargz(blob, options), (err: unknown) => {
      assert.ok(err instanceof InvalidTocError, `expected InvalidTocError, got ${String(err)}`);
      assert.equal(err.reason, reason, err.message);
      return true;
    });
  };

  it('reads a hand-made blob and checks offsets against the TOC offset', async () => {
    const prefix = Buffer.alloc(1000);
    const index = await openEstargz(blobWithToc(validToc(), { prefix }));
    assert.equal(index.tocOffset, 1000);
    await blobRejects(blobWithToc(validToc(), { prefix: Buffer.alloc(400) }), 'offset-out-of-range');
    const legacy = await openEstargz(blobWithToc(validToc(), { prefix, legacy: true }));
    assert.equal(legacy.tocOffset, 1000);
  });

  it('rejects a wrong TOC digest', async () => {
    const { blob } = await convert(await packTar([]));
    await assert.rejects(openEstargz(blob, { expectedTocDigest: SHA_A }), TocDigestMismatchError);
    await blobRejects(blob, 'toc-digest-mismatch', { expectedTocDigest: 'not-a-digest' });
  });

  it('rejects damaged TOC members and footers', async () => {
    const prefix = Buffer.alloc(1000);
    const good = blobWithToc(validToc(), { prefix });
    await blobRejects(Buffer.concat([prefix, Buffer.from('not gzip at all'), encodeFooter(1000)]), 'toc-gzip-invalid');
    const otherName = Buffer.concat([encodeTarHeader(simpleFileHeader('index.json', 2)), Buffer.from('{}'), Buffer.alloc(paddingFor(2)), END_OF_ARCHIVE]);
    await blobRejects(Buffer.concat([prefix, gzipSync(otherName), encodeFooter(1000)]), 'toc-tar-invalid');
    await blobRejects(Buffer.concat([prefix, gzipSync(Buffer.alloc(1024)), encodeFooter(1000)]), 'toc-tar-invalid');
    await blobRejects(Buffer.concat([prefix, gzipSync(Buffer.from('garbage that is no tar header')), encodeFooter(1000)]), 'toc-tar-invalid');
    await blobRejects(Buffer.concat([good.subarray(0, good.length - 51), encodeFooter(good.length)]), 'toc-offset-out-of-range');
    await blobRejects(Buffer.concat([good.subarray(0, good.length - 51), Buffer.alloc(51)]), 'footer-invalid');
    await blobRejects(Buffer.alloc(20), 'footer-invalid');
    await blobRejects(good, 'toc-too-large', { limits: { maxTocCompressedBytes: 10 } });
  });

  it('refuses a TOC that inflates past the limit without inflating it all', async () => {
    const bomb = `{"version":1,"entries":[]${' '.repeat(30 << 20)}}`;
    await blobRejects(blobWithToc(bomb), 'toc-too-large', { limits: { maxTocJsonBytes: 1 << 20 } });
  });
});

describe('TOC parser fuzzing', () => {
  const onlyTyped = (run: () => unknown): void => {
    try {
      const result = run();
      assert.ok(result instanceof TocIndex);
    } catch (err) {
      if (!(err instanceof InvalidTocError)) throw err;
    }
  };
  const onlyTypedAsync = async (run: () => Promise<unknown>): Promise<void> => {
    try {
      assert.ok((await run()) instanceof TocIndex);
    } catch (err) {
      if (!(err instanceof InvalidTocError)) throw err;
    }
  };

  const anyValue = fc.oneof(
    fc.constant(null), fc.boolean(), fc.string({ maxLength: 12 }),
    fc.integer({ min: -5, max: 5000 }), fc.double(), fc.constantFrom(2 ** 53, -0, 1e308, 4.5),
    fc.constantFrom(SHA_A, 'sha256:', 'md5:abc', '2020-01-01T00:00:00Z', 'eA==', '../x', '/abs', 'a\u0000b', '', './', 'a'),
    fc.array(fc.integer(), { maxLength: 2 }), fc.dictionary(fc.constantFrom('user.x', '', 'a\u0000'), fc.constantFrom('eA==', '???', 7), { maxKeys: 2 }),
  );
  // Mostly plausible values, so that many TOCs get past field checks into the structural rules.
  const mostly = <T,>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ arbitrary: valid, weight: 80 }, { arbitrary: anyValue, weight: 1 });
  const nameArb = fc.oneof(
    { arbitrary: fc.constantFrom('a', 'a/', './a', 'a/b', 'a/b/c', 'b', 'b/c', 'c', './', 'a//b', 'stargz.index.json', '.prefetch.landmark'), weight: 30 },
    { arbitrary: fc.constantFrom('', '..', 'a/../b', '/a', 'a\u0000'), weight: 1 },
  );
  const entryArb = fc.record({
    name: mostly(nameArb),
    type: mostly(fc.constantFrom('dir', 'dir', 'reg', 'reg', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk', 'chunk', 'chunk', 'bogus')),
    size: mostly(fc.integer({ min: 0, max: 12 })),
    offset: mostly(fc.integer({ min: 0, max: 1100 })),
    innerOffset: mostly(fc.constantFrom(0, 0, 0, 512)),
    chunkOffset: mostly(fc.integer({ min: 0, max: 12 })),
    chunkSize: mostly(fc.integer({ min: 0, max: 6 })),
    linkName: mostly(nameArb),
    chunkDigest: mostly(fc.constantFrom(SHA_A, SHA_B)),
    digest: mostly(fc.constant(SHA_A)),
    modtime: mostly(fc.constantFrom('2001-02-03T04:05:06Z', '1969-12-31T23:59:59.999-01:30')),
    mode: mostly(fc.integer({ min: 0, max: 0o177777 })),
    uid: mostly(fc.nat(70000)),
    xattrs: mostly(fc.constant({ 'user.a': 'YQ==' })),
    userName: mostly(fc.constantFrom('root', '')),
  }, { requiredKeys: ['type', 'name'] });
  const tocArb = fc.record({
    version: fc.oneof({ arbitrary: fc.constant(1), weight: 20 }, { arbitrary: anyValue, weight: 1 }),
    entries: fc.oneof({ arbitrary: fc.array(entryArb, { maxLength: 10 }), weight: 20 }, { arbitrary: anyValue, weight: 1 }),
  }, { requiredKeys: ['version', 'entries'] });

  it('returns an index or throws InvalidTocError on arbitrary bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => onlyTyped(() => parseTocIndex(bytes, { tocOffset: 1000 }))), { numRuns: 500, includeErrorInReport: true });
  });

  it('returns an index or throws InvalidTocError on arbitrary JSON', () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => onlyTyped(() => parse(value))), { numRuns: 500, includeErrorInReport: true });
  });

  it('returns an index or throws InvalidTocError on TOC-shaped JSON', () => {
    let accepted = 0;
    fc.assert(
      fc.property(tocArb, fc.boolean(), (toc, lenient) => onlyTyped(() => {
        const index = parse(toc, { tocOffset: 1000, requireChunkDigests: !lenient });
        accepted++;
        // Anything accepted must be internally consistent.
        for (const [path, node] of index.paths()) {
          assert.equal(index.lookup(path)?.ino, node.ino);
          let covered = 0;
          for (const c of node.chunks) {
            assert.equal(c.chunkOffset, covered);
            assert.ok(c.offset < c.compressedEnd && c.compressedEnd <= 1000);
            covered += c.chunkSize;
          }
          assert.equal(covered, node.size);
          if (path !== '') assert.equal(index.lookup(path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '')?.type, 'dir');
        }
        return index;
      })),
      { numRuns: 3000, includeErrorInReport: true },
    );
    assert.ok(accepted > 0, 'the generator also produces valid TOCs');
  });

  it('returns an index or throws InvalidTocError on damaged blobs', async () => {
    const { blob } = await convert(await packTar([
      { name: 'd', type: 'directory', mode: 0o755, uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: 1 },
      { name: 'd/f', type: 'file', mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1, content: Buffer.alloc(3000, 9) },
      { name: 'd/l', type: 'link', mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1, linkname: 'd/f' },
    ]), { chunkSize: 1000 });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(blob.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), async (flips) => {
        const damaged = Buffer.from(blob);
        for (const [at, mask] of flips) damaged[at] = damaged[at]! ^ mask;
        await onlyTypedAsync(() => openEstargz(damaged));
      }),
      { numRuns: 300, includeErrorInReport: true },
    );
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), fc.nat(500), async (bytes, tocOffset) => {
        await onlyTypedAsync(() => openEstargz(Buffer.concat([bytes, encodeFooter(tocOffset)])));
        await onlyTypedAsync(() => openEstargz(blobWithToc(Buffer.from(bytes))));
      }),
      { numRuns: 300, includeErrorInReport: true },
    );
  });
});
