import { ESTARGZ_FOOTER_SIZE, LEGACY_FOOTER_SIZE } from './constants.js';
import { digester, digestOf } from './digest.js';
import { EstargzError, InvalidFooterError, InvalidTocError, TocDigestMismatchError } from './errors.js';
import { parseFooter } from './footer.js';
import { extractTocJson } from './toc.js';
import { TocIndex } from './toc-index.js';
import { parseTocEntries, resolveLimits, type TocLimits } from './validate.js';

export interface ParseTocOptions {
  /** The digest the manifest annotation promises (`containerd.io/snapshot/stargz/toc.digest`). */
  expectedTocDigest?: string;
  limits?: Partial<TocLimits>;
  /**
   * Refuse chunks that carry no digest (default true). Only legacy stargz blobs lack
   * them, and without them lazily fetched data cannot be verified.
   */
  requireChunkDigests?: boolean;
}

/** Reads `length` bytes of the blob at `offset` (an HTTP range request, a file read...). */
export type BlobRangeReader = (offset: number, length: number) => Promise<Uint8Array>;

export interface ReadTocOptions extends ParseTocOptions {
  /**
   * How many bytes to read from the end of the blob in the first request. A value
   * larger than the footer often brings the whole TOC along and saves a round trip.
   */
  tailSize?: number;
}

function checkExpectedDigest(json: Uint8Array, computed: string, expected: string | undefined): void {
  if (expected === undefined) return;
  const { algorithm } = digester(expected);
  const actual = algorithm === 'sha256' ? computed : digestOf(json, algorithm);
  if (actual !== expected) throw new TocDigestMismatchError(expected, actual);
}

/**
 * Validates TOC JSON and builds the index. `tocOffset` bounds every data offset: file
 * data must lie before the TOC.
 */
export function parseTocIndex(json: Uint8Array, options: ParseTocOptions & { tocOffset: number }): TocIndex {
  const limits = resolveLimits(options.limits);
  const tocDigest = digestOf(json);
  checkExpectedDigest(json, tocDigest, options.expectedTocDigest);
  return TocIndex.build(parseTocEntries(json, limits), { tocOffset: options.tocOffset, tocDigest, limits, requireChunkDigests: options.requireChunkDigests ?? true });
}

/** Reads footer and TOC of a blob through range reads and returns its verified index. */
export async function readTocIndex(read: BlobRangeReader, blobSize: number, options: ReadTocOptions = {}): Promise<TocIndex> {
  const limits = resolveLimits(options.limits);
  if (!Number.isSafeInteger(blobSize) || blobSize < LEGACY_FOOTER_SIZE) throw new InvalidFooterError(`blob of ${blobSize} bytes is too small for a footer`);
  const tailSize = Math.min(blobSize, Math.max(ESTARGZ_FOOTER_SIZE, options.tailSize ?? ESTARGZ_FOOTER_SIZE));
  const tailStart = blobSize - tailSize;
  const tail = await readExactly(read, tailStart, tailSize);
  const footer = parseFooter(tail);
  const tocEnd = blobSize - footer.footerSize;
  if (footer.tocOffset >= tocEnd) throw new InvalidTocError('toc-offset-out-of-range', `TOC offset ${footer.tocOffset} is not inside the ${blobSize}-byte blob`);
  const tocLength = tocEnd - footer.tocOffset;
  if (tocLength > limits.maxTocCompressedBytes) throw new InvalidTocError('toc-too-large', `compressed TOC of ${tocLength} bytes exceeds ${limits.maxTocCompressedBytes}`);
  const member = footer.tocOffset >= tailStart
    ? tail.subarray(footer.tocOffset - tailStart, tocEnd - tailStart)
    : await readExactly(read, footer.tocOffset, tocLength);
  const { json } = await extractTocJson(member, limits.maxTocJsonBytes);
  const digest = digestOf(json);
  checkExpectedDigest(json, digest, options.expectedTocDigest);
  return TocIndex.build(parseTocEntries(json, limits), { tocOffset: footer.tocOffset, tocDigest: digest, limits, requireChunkDigests: options.requireChunkDigests ?? true });
}

/** readTocIndex over a blob held in memory. */
export function openEstargz(blob: Uint8Array, options: ReadTocOptions = {}): Promise<TocIndex> {
  return readTocIndex(async (offset, length) => blob.subarray(offset, offset + length), blob.length, { tailSize: blob.length, ...options });
}

async function readExactly(read: BlobRangeReader, offset: number, length: number): Promise<Uint8Array> {
  const bytes = await read(offset, length);
  if (bytes.length !== length) throw new EstargzError(`range read of ${length} bytes at ${offset} returned ${bytes.length}`);
  return bytes;
}
