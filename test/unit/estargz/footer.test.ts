import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { ESTARGZ_FOOTER_SIZE, InvalidFooterError, InvalidTocError, LEGACY_FOOTER_SIZE, encodeFooter, encodeLegacyFooter, parseFooter } from '../../../src/estargz/index.js';

describe('eStargz footer', () => {
  it('has the exact 51-byte layout stargz-snapshotter writes', () => {
    const golden = Buffer.concat([
      Buffer.from([0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0x00, 0xff]), // gzip header, FEXTRA, no mtime, OS unknown
      Buffer.from([26, 0]), // XLEN
      Buffer.from('SG'), Buffer.from([22, 0]), // subfield id and length
      Buffer.from('0000000000012abcSTARGZ', 'latin1'),
      Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff]), // final empty stored block
      Buffer.alloc(8), // CRC32 and ISIZE of nothing
    ]);
    assert.equal(golden.length, ESTARGZ_FOOTER_SIZE);
    assert.deepEqual(encodeFooter(0x12abc), golden);
  });

  it('is an empty gzip member', () => {
    assert.equal(gunzipSync(encodeFooter(123456)).length, 0);
    assert.equal(gunzipSync(encodeLegacyFooter(123456)).length, 0);
  });

  it('has the 47-byte legacy layout', () => {
    const legacy = encodeLegacyFooter(0xfeed);
    assert.equal(legacy.length, LEGACY_FOOTER_SIZE);
    assert.deepEqual(legacy.subarray(0, 12), Buffer.from([0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 22, 0]));
    assert.equal(legacy.subarray(12, 34).toString('latin1'), '000000000000feedSTARGZ');
  });

  it('round-trips both kinds for any offset', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.uint8Array({ maxLength: 100 }), (offset, before) => {
        const tail = Buffer.concat([before, encodeFooter(offset)]);
        assert.deepEqual(parseFooter(tail), { kind: 'estargz', tocOffset: offset, footerSize: 51 });
        const legacyTail = Buffer.concat([before, encodeLegacyFooter(offset)]);
        // A legacy footer must not be mistaken for an eStargz one whatever precedes it.
        assert.deepEqual(parseFooter(legacyTail), { kind: 'legacy', tocOffset: offset, footerSize: 47 });
      }),
    );
  });

  it('parses a tail that is exactly a legacy footer', () => {
    assert.deepEqual(parseFooter(encodeLegacyFooter(99)), { kind: 'legacy', tocOffset: 99, footerSize: 47 });
  });

  it('accepts upper-case hex like Go strconv.ParseInt', () => {
    const footer = encodeFooter(0xabc);
    footer.write('0000000000000ABC', 16, 'latin1');
    assert.equal(parseFooter(footer).tocOffset, 0xabc);
  });

  it('rejects damaged footers with InvalidFooterError', () => {
    const cases: [string, (b: Buffer) => void][] = [
      ['bad magic', (b) => b.write('STARGY', 32, 'latin1')],
      ['bad subfield id', (b) => b.write('EG', 12, 'latin1')],
      ['bad subfield length', (b) => { b[14] = 21; }],
      ['not hex', (b) => b.write('zz', 16, 'latin1')],
      ['sign', (b) => b.write('-', 16, 'latin1')],
      ['not gzip', (b) => { b[0] = 0; }],
      ['other flags', (b) => { b[3] = 0x0c; }],
      ['offset beyond 2^53', (b) => b.write('ffffffffffffffff', 16, 'latin1')],
    ];
    for (const [what, damage] of cases) {
      const footer = encodeFooter(0x1000);
      damage(footer);
      assert.throws(() => parseFooter(footer), (err: unknown) => err instanceof InvalidFooterError && err instanceof InvalidTocError && err.reason === 'footer-invalid', what);
    }
    assert.throws(() => parseFooter(Buffer.alloc(10)), InvalidFooterError);
    assert.throws(() => parseFooter(Buffer.alloc(60)), InvalidFooterError);
  });

  it('never throws anything but InvalidFooterError on random tails', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
        try {
          parseFooter(bytes);
        } catch (err) {
          assert.ok(err instanceof InvalidFooterError, String(err));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('refuses to encode offsets that do not fit', () => {
    assert.throws(() => encodeFooter(-1), RangeError);
    assert.throws(() => encodeFooter(2 ** 53), RangeError);
  });
});
