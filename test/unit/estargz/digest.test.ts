import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DigestTable } from '../../../src/estargz/digest-table.js';
import { isDigest, parseDigest } from '../../../src/estargz/digest.js';

const hex = (length: number, digit = 'a'): string => digit.repeat(length);

describe('TOC digests', () => {
  it('accepts exactly the lowercase digests of known algorithms, as parseDigest does', () => {
    const cases = [
      `sha256:${hex(64)}`, `sha384:${hex(96, '7')}`, `sha512:${hex(128, 'f')}`,
      `sha256:${hex(63)}`, `sha256:${hex(65)}`, `sha256:${hex(64, 'A')}`, `sha256:${hex(63)}g`,
      `sha1:${hex(40)}`, `md5:${hex(32)}`, `SHA256:${hex(64)}`, `sha256${hex(64)}`, `:${hex(64)}`, '',
      `sha256:${hex(64)}\n`, `xsha256:${hex(64)}`, `sha384:${hex(64)}`,
    ];
    for (const value of cases) assert.equal(isDigest(value), parseDigest(value) !== undefined, JSON.stringify(value));
    assert.deepEqual(cases.filter(isDigest), cases.slice(0, 3));
  });

  it('keeps digests of every known algorithm as bytes and gives back the same strings', () => {
    const table = new DigestTable();
    const digests = [`sha256:${'0123456789abcdef'.repeat(4)}`, `sha384:${'fedcba9876543210'.repeat(6)}`, `sha512:${'00ff'.repeat(32)}`];
    const refs = digests.map((digest) => table.add(digest));
    table.seal();
    assert.deepEqual(refs.map((ref) => table.get(ref)), digests);
    const copy = DigestTable.fromSealed(new Uint8Array(table.sealedBytes));
    assert.deepEqual(refs.map((ref) => copy.get(ref)), digests);
  });

  it('refuses to store what does not fill a digest slot with hex', () => {
    const table = new DigestTable();
    for (const bad of [`sha256:${hex(62)}zz`, `sha256:${hex(63)}`, `sha1:${hex(40)}`, `sha256:${hex(32)}:${hex(31)}`]) {
      assert.throws(() => table.add(bad), RangeError, bad);
    }
  });
});
