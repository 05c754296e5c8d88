import { promisify } from 'node:util';
import { gunzip as gunzipCb, gzip as gzipCb, constants as zlibConstants } from 'node:zlib';
import { TOC_TAR_NAME } from './constants.js';
import { EstargzError, InvalidTocError } from './errors.js';
import { inflateBufferSize } from './inflate-buffer.js';
import { END_OF_ARCHIVE, TarReader, encodeTarHeader, paddingFor, simpleFileHeader } from './tar.js';

const gzip = promisify(gzipCb);
const gunzip = promisify(gunzipCb);

export type TocEntryType = 'dir' | 'reg' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'chunk';

export const TOC_ENTRY_TYPES: ReadonlySet<string> = new Set<TocEntryType>(['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk']);

/**
 * One TOC entry as serialized, with stargz-snapshotter's JSON field names. Zero
 * values are omitted on the wire (Go's `omitempty`), so every field but name and
 * type is optional.
 */
export interface TocEntryJson {
  name: string;
  type: TocEntryType;
  size?: number;
  /** RFC 3339, UTC, whole seconds; absent for a zero or unknown time. */
  modtime?: string;
  linkName?: string;
  /** The tar header's mode field: permission bits, possibly with file-type bits too. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Written only when it differs from the last name seen for this uid; readers carry it forward. */
  userName?: string;
  groupName?: string;
  /** Compressed offset of the gzip member whose uncompressed bytes (from innerOffset) are this chunk's data. */
  offset?: number;
  innerOffset?: number;
  devMajor?: number;
  devMinor?: number;
  /** Extended attributes, values base64-encoded (Go's []byte JSON form). */
  xattrs?: Record<string, string>;
  /** Digest of the whole file content (reg entries). */
  digest?: string;
  chunkOffset?: number;
  /** Uncompressed chunk length; absent on a file's last chunk when it is shorter than the chunk size. */
  chunkSize?: number;
  chunkDigest?: string;
}

export interface TocJson {
  version: number;
  entries: TocEntryJson[];
}

/** Field order of stargz-snapshotter's Go struct, so our TOCs read like theirs. */
const FIELD_ORDER: readonly (keyof TocEntryJson)[] = [
  'name', 'type', 'size', 'modtime', 'linkName', 'mode', 'uid', 'gid', 'userName', 'groupName', 'offset', 'innerOffset',
  'devMajor', 'devMinor', 'xattrs', 'digest', 'chunkOffset', 'chunkSize', 'chunkDigest',
];

/** Serializes a TOC the way stargz-snapshotter does: tab-indented, zero fields omitted, xattr keys sorted. */
export function encodeTocJson(toc: TocJson): Buffer {
  const entries = toc.entries.map((entry) => {
    const out: Record<string, unknown> = {};
    for (const key of FIELD_ORDER) {
      const value = entry[key];
      if (key === 'name' || key === 'type') {
        out[key] = value;
        continue;
      }
      if (value === undefined || value === 0 || value === '') continue;
      if (key === 'xattrs') {
        const xattrs = value as Record<string, string>;
        const keys = Object.keys(xattrs).sort();
        if (keys.length === 0) continue;
        const sorted: Record<string, string> = {};
        for (const k of keys) sorted[k] = xattrs[k]!;
        out[key] = sorted;
        continue;
      }
      out[key] = value;
    }
    return out;
  });
  return Buffer.from(JSON.stringify({ version: toc.version, entries }, null, '\t'), 'utf8');
}

/** Go formats modtimes as UTC RFC 3339 rounded to the second, and leaves out the epoch itself. */
export function formatModtime(seconds: number, fraction = 0): string | undefined {
  const rounded = seconds + (fraction >= 0.5 ? 1 : 0);
  // Beyond four-digit years Go's RFC 3339 output stops being parseable; leave such times out.
  if (rounded === 0 || rounded < -62135596800 || rounded > 253402300799) return undefined;
  return new Date(rounded * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The uncompressed content of the TOC gzip member: a tar entry named
 * stargz.index.json holding the JSON, then the end-of-archive blocks, because the
 * TOC is the last tar entry of the layer.
 */
export function tocMemberPayload(json: Buffer): Buffer {
  return Buffer.concat([encodeTarHeader(simpleFileHeader(TOC_TAR_NAME, json.length)), json, Buffer.alloc(paddingFor(json.length)), END_OF_ARCHIVE]);
}

export async function encodeTocMember(json: Buffer, level: number = zlibConstants.Z_BEST_COMPRESSION): Promise<Buffer> {
  return gzip(tocMemberPayload(json), { level });
}

/** TOC JSON inflates about sixfold; sizing the buffer for eightfold makes most TOCs one step. */
const TOC_INFLATE_RATIO = 8;
/**
 * One inflate step may allocate this much for a TOC. A TOC inflated in more
 * than one step is copied once more to join the steps' output: for the 4 MB
 * TOC of a 13,000-entry layer that copy was 5 ms of the event loop, while
 * the image's other layers waited on it. Past this size TOCs are rare and
 * the copy is small next to their parse.
 */
const MAX_TOC_INFLATE_BUFFER = 8 * 1024 * 1024;

export interface TocJsonBytes {
  /** The uncompressed TOC JSON, exactly the bytes the TOC digest covers (hashing it is the caller's: the parser checks the digest where it parses). */
  json: Buffer;
}

/**
 * Extracts the TOC JSON from the TOC gzip member (the blob bytes from the TOC offset
 * up to the footer). Inflation is bounded so a gzip bomb is refused, not allocated.
 */
export async function extractTocJson(member: Uint8Array, maxJsonBytes: number): Promise<TocJsonBytes> {
  let payload: Buffer;
  try {
    payload = await gunzip(member, { maxOutputLength: maxJsonBytes + 64 * 1024, chunkSize: inflateBufferSize(member.length * TOC_INFLATE_RATIO, MAX_TOC_INFLATE_BUFFER) });
  } catch (err) {
    if (err instanceof RangeError || (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new InvalidTocError('toc-too-large', `TOC member inflates past ${maxJsonBytes} bytes`);
    }
    throw new InvalidTocError('toc-gzip-invalid', `TOC member is not valid gzip: ${(err as Error).message}`);
  }
  try {
    const reader = new TarReader((async function* () {
      yield payload;
    })());
    const header = await reader.next();
    if (header === undefined) throw new InvalidTocError('toc-tar-invalid', 'TOC member holds no tar entry');
    const name = header.nameBytes.toString('utf8');
    if (name !== TOC_TAR_NAME || header.typeflag !== '0') {
      throw new InvalidTocError('toc-tar-invalid', `TOC tar entry is ${JSON.stringify(name)} of type ${header.typeflag}, expected regular file ${TOC_TAR_NAME}`);
    }
    if (header.size > maxJsonBytes) throw new InvalidTocError('toc-too-large', `TOC JSON of ${header.size} bytes exceeds ${maxJsonBytes}`);
    // The payload is in memory already: asked for all of it, the body comes back as one view of it, not a copy.
    const parts: Buffer[] = [];
    for (let piece = await reader.readBody(header.size); piece !== undefined; piece = await reader.readBody(header.size)) parts.push(piece);
    return { json: parts.length === 1 ? parts[0]! : Buffer.concat(parts) };
  } catch (err) {
    if (err instanceof InvalidTocError) throw err;
    throw new InvalidTocError('toc-tar-invalid', err instanceof EstargzError ? err.message : String(err));
  }
}
