import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { InvalidTarError } from '../../../src/estargz/index.js';
import { END_OF_ARCHIVE, TarReader, encodePaxRecords, encodeTarHeader, paddingFor, parsePaxRecords, simpleFileHeader, type TarHeader } from '../../../src/estargz/tar.js';
import { chunksOf } from './helpers.js';

async function readAll(tar: Buffer, pieceSize = 333): Promise<{ header: TarHeader; body: Buffer }[]> {
  const reader = new TarReader(chunksOf(tar, pieceSize));
  const out: { header: TarHeader; body: Buffer }[] = [];
  for (let header = await reader.next(); header !== undefined; header = await reader.next()) {
    const parts: Buffer[] = [];
    for (let p = await reader.readBody(); p !== undefined; p = await reader.readBody()) parts.push(p);
    out.push({ header, body: Buffer.concat(parts) });
  }
  return out;
}

function archive(entries: { header: TarHeader; body: Buffer }[]): Buffer {
  return Buffer.concat([...entries.flatMap(({ header, body }) => [encodeTarHeader(header), body, Buffer.alloc(paddingFor(body.length))]), END_OF_ARCHIVE]);
}

const bytesArb = (min: number, max: number): fc.Arbitrary<Buffer> => fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a.map((b) => (b === 0 ? 0x41 : b))));

const headerArb: fc.Arbitrary<{ header: TarHeader; body: Buffer }> = fc.record({
  nameBytes: fc.oneof(bytesArb(1, 20), bytesArb(90, 300), fc.constantFrom(Buffer.from('a/b/c'), Buffer.from(`${'p'.repeat(120)}/${'n'.repeat(90)}`))),
  linkNameBytes: fc.oneof(fc.constant(Buffer.alloc(0)), bytesArb(1, 150)),
  typeflag: fc.constantFrom('0' as const, '1' as const, '2' as const, '3' as const, '4' as const, '5' as const, '6' as const),
  mode: fc.integer({ min: 0, max: 0o7777777 }),
  uid: fc.oneof(fc.nat(0o7777777), fc.nat(2 ** 40)),
  gid: fc.oneof(fc.nat(0o7777777), fc.nat(2 ** 40)),
  mtime: fc.oneof(fc.nat(2 ** 33), fc.integer({ min: -(2 ** 40), max: 2 ** 40 })),
  mtimeText: fc.constant(undefined),
  unameBytes: fc.oneof(fc.constant(Buffer.alloc(0)), bytesArb(1, 40)),
  gnameBytes: fc.oneof(fc.constant(Buffer.alloc(0)), bytesArb(1, 40)),
  devMajor: fc.oneof(fc.nat(0o7777777), fc.nat(2 ** 32)),
  devMinor: fc.nat(2 ** 32),
  pax: fc.array(fc.tuple(fc.constantFrom('SCHILY.xattr.user.x', 'SCHILY.xattr.security.capability', 'comment'), fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a))), { maxLength: 2 }),
  size: fc.constant(0),
}).chain((header) => (header.typeflag === '0' ? bytesArb(0, 1500) : fc.constant(Buffer.alloc(0))).map((body) => {
  const pax = new Map(header.pax.map(([k, v]) => [k, v] as const));
  return { header: { ...header, pax: [...pax].filter(([, v]) => v.length > 0), size: body.length }, body };
}));

describe('tar codec', () => {
  it('round-trips any header through our encoder and reader', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(headerArb, { maxLength: 6 }), fc.integer({ min: 1, max: 2000 }), async (entries, pieceSize) => {
        const back = await readAll(archive(entries), pieceSize);
        assert.equal(back.length, entries.length);
        for (const [i, { header, body }] of entries.entries()) {
          const got = back[i]!;
          assert.deepEqual(got.body, body);
          const expectedType = header.typeflag;
          assert.equal(got.header.typeflag, expectedType);
          for (const key of ['nameBytes', 'linkNameBytes', 'mode', 'uid', 'gid', 'mtime', 'unameBytes', 'gnameBytes', 'devMajor', 'devMinor', 'size'] as const) {
            assert.deepEqual(got.header[key], header[key], key);
          }
          for (const [k, v] of header.pax) assert.deepEqual(got.header.pax.find(([gk]) => gk === k)?.[1], v);
        }
      }),
      { numRuns: 200, includeErrorInReport: true },
    );
  });

  it('encodes PAX record lengths that count their own digits', () => {
    for (const n of [0, 1, 80, 85, 86, 87, 990, 995, 996, 1000]) {
      const records = [['k', Buffer.alloc(n, 0x61)] as const];
      const encoded = encodePaxRecords(records);
      assert.equal(parseInt(encoded.toString('latin1'), 10), encoded.length, `value of ${n}`);
      assert.deepEqual(parsePaxRecords(encoded), records);
    }
  });

  it('reads GNU-format archives with long names (if GNU tar is here)', { skip: !existsSync('/bin/tar') && !existsSync('/usr/bin/tar') }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lazysnap-tar-'));
    try {
      const longDir = join(dir, 'src', 'd'.repeat(120));
      mkdirSync(longDir, { recursive: true });
      writeFileSync(join(longDir, 'f'.repeat(130)), 'content');
      execFileSync('tar', ['--format=gnu', '-C', join(dir, 'src'), '-cf', join(dir, 'gnu.tar'), '.']);
      const entries = await readAll(readFileSync(join(dir, 'gnu.tar')));
      const file = entries.find((e) => e.header.typeflag === '0')!;
      assert.equal(file.header.nameBytes.toString(), `./${'d'.repeat(120)}/${'f'.repeat(130)}`);
      assert.equal(file.body.toString(), 'content');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('applies global PAX headers and old-style directory names', async () => {
    const global = encodePaxRecords([['uid', Buffer.from('4242')], ['comment', Buffer.from('from git archive')]]);
    const gHeader = encodeTarHeader({ ...simpleFileHeader('pax_global_header', global.length), typeflag: '0' });
    gHeader[156] = 'g'.charCodeAt(0);
    fixChecksum(gHeader);
    const v7dir = encodeTarHeader(simpleFileHeader('olddir/', 0));
    v7dir[156] = 0;
    fixChecksum(v7dir);
    const tar = Buffer.concat([gHeader, global, Buffer.alloc(paddingFor(global.length)), v7dir, END_OF_ARCHIVE]);
    const [entry] = await readAll(tar);
    assert.equal(entry!.header.typeflag, '5');
    assert.equal(entry!.header.uid, 4242);
  });

  it('rejects broken archives with InvalidTarError', async () => {
    const good = archive([{ header: simpleFileHeader('f', 3), body: Buffer.from('abc') }]);
    const badSum = Buffer.from(good);
    badSum[0] = 0x7a;
    await assert.rejects(readAll(badSum), (e: unknown) => e instanceof InvalidTarError && e.reason === 'bad-checksum');
    await assert.rejects(readAll(good.subarray(0, 515)), (e: unknown) => e instanceof InvalidTarError && e.reason === 'truncated');
    await assert.rejects(readAll(good.subarray(0, 300)), (e: unknown) => e instanceof InvalidTarError && e.reason === 'truncated');
    const sparse = encodeTarHeader({ ...simpleFileHeader('s', 0), pax: [['GNU.sparse.major', Buffer.from('1')]] });
    await assert.rejects(readAll(Buffer.concat([sparse, END_OF_ARCHIVE])), (e: unknown) => e instanceof InvalidTarError && e.reason === 'unsupported-type');
    const weird = encodeTarHeader(simpleFileHeader('v', 0));
    weird[156] = 'V'.charCodeAt(0);
    fixChecksum(weird);
    await assert.rejects(readAll(Buffer.concat([weird, END_OF_ARCHIVE])), (e: unknown) => e instanceof InvalidTarError && e.reason === 'unsupported-type');
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), async (bytes) => {
        try {
          await readAll(Buffer.from(bytes));
        } catch (err) {
          assert.ok(err instanceof InvalidTarError, String(err));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('treats an archive without end blocks, ending on a header boundary, as complete', async () => {
    const body = Buffer.from('xyz');
    const tar = Buffer.concat([encodeTarHeader(simpleFileHeader('f', 3)), body, Buffer.alloc(paddingFor(3))]);
    assert.equal((await readAll(tar)).length, 1);
  });
});

function fixChecksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block.subarray(0, 512)) sum += b;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
}
