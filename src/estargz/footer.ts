import { ESTARGZ_FOOTER_SIZE, LEGACY_FOOTER_SIZE } from './constants.js';
import { InvalidFooterError } from './errors.js';

export type FooterKind = 'estargz' | 'legacy';

export interface Footer {
  kind: FooterKind;
  /** Compressed offset of the gzip member that holds the TOC tar entry. */
  tocOffset: number;
  footerSize: number;
}

const MAGIC = 'STARGZ';
const FEXTRA = 0x04;
/**
 * The footer is an empty gzip member written with Go's NoCompression level: a
 * final stored block of length 0, then CRC32 and ISIZE of the empty input (zero).
 */
const EMPTY_STORED_DEFLATE_AND_TRAILER = [0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0];

function offsetField(tocOffset: number): string {
  if (!Number.isSafeInteger(tocOffset) || tocOffset < 0) throw new RangeError(`TOC offset ${tocOffset} is not a non-negative safe integer`);
  return tocOffset.toString(16).padStart(16, '0') + MAGIC;
}

function gzipHeader(xlen: number): number[] {
  // Go's gzip.Writer header: no mtime, XFL 0 (NoCompression), OS 255 (unknown).
  return [0x1f, 0x8b, 0x08, FEXTRA, 0, 0, 0, 0, 0x00, 0xff, xlen & 0xff, xlen >> 8];
}

/**
 * The 51-byte eStargz footer: the Extra field is one RFC 1952 subfield with id "SG"
 * whose payload is "%016xSTARGZ" (TOC offset in lower-case hex, then the magic).
 */
export function encodeFooter(tocOffset: number): Buffer {
  const subfield = offsetField(tocOffset);
  const out = Buffer.from([...gzipHeader(4 + subfield.length), 0x53, 0x47, subfield.length & 0xff, subfield.length >> 8, ...Buffer.from(subfield, 'latin1'), ...EMPTY_STORED_DEFLATE_AND_TRAILER]);
  if (out.length !== ESTARGZ_FOOTER_SIZE) throw new Error(`internal: footer is ${out.length} bytes`);
  return out;
}

/** The 47-byte footer of the original (CRFS) stargz: the Extra field is "%016xSTARGZ" with no subfield header. */
export function encodeLegacyFooter(tocOffset: number): Buffer {
  const extra = offsetField(tocOffset);
  const out = Buffer.from([...gzipHeader(extra.length), ...Buffer.from(extra, 'latin1'), ...EMPTY_STORED_DEFLATE_AND_TRAILER]);
  if (out.length !== LEGACY_FOOTER_SIZE) throw new Error(`internal: legacy footer is ${out.length} bytes`);
  return out;
}

/** Returns the Extra field of a gzip member header that starts at p[0], or a reason it cannot. */
function gzipExtra(p: Uint8Array): Uint8Array | string {
  if (p.length < 12) return 'too short for a gzip header';
  if (p[0] !== 0x1f || p[1] !== 0x8b || p[2] !== 0x08) return 'not a gzip member';
  // Any other flag would move the fixed-size layout; neither stargz writer sets one.
  if (p[3] !== FEXTRA) return `unexpected gzip flags 0x${p[3]!.toString(16)}`;
  const xlen = p[10]! | (p[11]! << 8);
  if (12 + xlen > p.length) return 'extra field runs past the footer';
  return p.subarray(12, 12 + xlen);
}

function parseOffset(field: Uint8Array): number | string {
  const text = Buffer.from(field.subarray(0, 16)).toString('latin1');
  const magic = Buffer.from(field.subarray(16)).toString('latin1');
  if (magic !== MAGIC) return 'STARGZ magic missing';
  if (!/^[0-9a-fA-F]{16}$/.test(text)) return 'TOC offset is not 16 hex digits';
  const value = BigInt('0x' + text);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) return 'TOC offset too large';
  return Number(value);
}

function parseEstargz(p: Uint8Array): number | string {
  const extra = gzipExtra(p);
  if (typeof extra === 'string') return extra;
  if (extra.length !== 4 + 16 + MAGIC.length) return `extra field is ${extra.length} bytes, want 26`;
  if (extra[0] !== 0x53 || extra[1] !== 0x47) return 'subfield id is not "SG"';
  if ((extra[2]! | (extra[3]! << 8)) !== 16 + MAGIC.length) return 'subfield length is not 22';
  return parseOffset(extra.subarray(4));
}

function parseLegacy(p: Uint8Array): number | string {
  const extra = gzipExtra(p);
  if (typeof extra === 'string') return extra;
  if (extra.length !== 16 + MAGIC.length) return `extra field is ${extra.length} bytes, want 22`;
  return parseOffset(extra);
}

/**
 * Parses the footer from the tail of a blob. `tail` must end where the blob ends and
 * hold at least 51 bytes (or all of a blob shorter than that). The eStargz layout is
 * tried first, then the legacy one in the last 47 bytes, as stargz-snapshotter does.
 */
export function parseFooter(tail: Uint8Array): Footer {
  if (tail.length < LEGACY_FOOTER_SIZE) throw new InvalidFooterError(`blob tail of ${tail.length} bytes is shorter than any footer`);
  let estargzProblem = 'blob shorter than an eStargz footer';
  if (tail.length >= ESTARGZ_FOOTER_SIZE) {
    const result = parseEstargz(tail.subarray(tail.length - ESTARGZ_FOOTER_SIZE));
    if (typeof result === 'number') return { kind: 'estargz', tocOffset: result, footerSize: ESTARGZ_FOOTER_SIZE };
    estargzProblem = result;
  }
  const legacy = parseLegacy(tail.subarray(tail.length - LEGACY_FOOTER_SIZE));
  if (typeof legacy === 'number') return { kind: 'legacy', tocOffset: legacy, footerSize: LEGACY_FOOTER_SIZE };
  throw new InvalidFooterError(`not an eStargz footer (${estargzProblem}) nor a legacy stargz footer (${legacy})`);
}
