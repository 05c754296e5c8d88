import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { cleanLookupPath, normalizeEntryName } from '../../../src/estargz/names.js';
import { parseRfc3339 } from '../../../src/estargz/validate.js';
import { formatModtime } from '../../../src/estargz/toc.js';

/** The obvious, slow definition: drop empty and "." segments, refuse "..", absolute paths and NUL. */
function reference(raw: string): string | undefined {
  if (raw.includes('\0') || raw.startsWith('/')) return undefined;
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return undefined;
  return parts.join('/');
}

describe('entry names', () => {
  it('normalize like the reference definition', () => {
    const segment = fc.constantFrom('', '.', '..', 'a', 'bc', '.hidden', '..x', 'x..', 'ü', 'a\u0000');
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 6 }), (segments) => {
        const raw = segments.join('/');
        const got = normalizeEntryName(raw);
        assert.equal(got.ok ? got.name : undefined, reference(raw), JSON.stringify(raw));
      }),
      { numRuns: 2000 },
    );
  });

  it('clean lookup paths as stargz-snapshotter does', () => {
    assert.equal(cleanLookupPath('/a/b/'), 'a/b');
    assert.equal(cleanLookupPath('../a/./b'), 'a/b');
    assert.equal(cleanLookupPath('a/../../b'), 'b');
    assert.equal(cleanLookupPath(''), '');
  });
});

describe('TOC times', () => {
  it('format like Go: UTC, whole seconds rounded half up, none for the epoch', () => {
    assert.equal(formatModtime(1_600_000_000), '2020-09-13T12:26:40Z');
    assert.equal(formatModtime(1_600_000_000, 0.5), '2020-09-13T12:26:41Z');
    assert.equal(formatModtime(1_600_000_000, 0.49), '2020-09-13T12:26:40Z');
    assert.equal(formatModtime(0), undefined);
    assert.equal(formatModtime(-1), '1969-12-31T23:59:59Z');
    assert.equal(formatModtime(253402300800), undefined, 'past year 9999');
  });

  it('parse what they format, and years before 100 correctly', () => {
    fc.assert(fc.property(fc.integer({ min: -62135596800, max: 253402300799 }).filter((s) => s !== 0), (seconds) => {
      assert.equal(parseRfc3339(formatModtime(seconds)!), seconds * 1000);
    }));
    assert.equal(parseRfc3339('0001-01-01T00:00:00Z'), -62135596800000);
    assert.equal(parseRfc3339('0004-02-29T00:00:00Z'), Date.UTC(2004, 1, 29) - 2000 * 365.2425 * 86400000);
    assert.equal(parseRfc3339('2019-02-29T00:00:00Z'), undefined);
    assert.equal(parseRfc3339('2019-01-01T24:00:00Z'), undefined);
    assert.equal(parseRfc3339('2019-01-00T00:00:00Z'), undefined);
    assert.equal(parseRfc3339('2019-13-01T00:00:00Z'), undefined);
    assert.equal(parseRfc3339('2019-01-01T00:00:00+24:00'), undefined);
    assert.equal(parseRfc3339('2019-01-01 00:00:00Z'), undefined);
  });
});
