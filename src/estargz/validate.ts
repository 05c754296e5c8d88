import { isDigest } from './digest.js';
import { InvalidTocError, type TocErrorReason } from './errors.js';
import { MAX_NAME_BYTES, normalizeEntryName } from './names.js';
import { TOC_ENTRY_TYPES, type TocEntryType } from './toc.js';

/**
 * Bounds applied to an untrusted TOC. Each one caps an allocation or a loop that a
 * hostile blob could otherwise make as large as it liked.
 */
export interface TocLimits {
  /** Bytes between the TOC offset and the footer (the compressed TOC member). */
  maxTocCompressedBytes: number;
  /** Uncompressed TOC JSON bytes. */
  maxTocJsonBytes: number;
  /** TOC entries, chunks included; the index may add as many implicit directories again. */
  maxEntries: number;
  maxFileSize: number;
  /** Largest uncompressed chunk a fetcher will be asked to hold in memory. */
  maxChunkSize: number;
  /** Largest number of uncompressed bytes to skip inside a gzip member to reach a chunk. */
  maxInnerOffset: number;
  maxXattrsPerEntry: number;
  maxXattrBytesPerEntry: number;
  maxNameBytes: number;
}

export const DEFAULT_TOC_LIMITS: Readonly<TocLimits> = Object.freeze({
  maxTocCompressedBytes: 64 << 20,
  maxTocJsonBytes: 128 << 20,
  maxEntries: 1_000_000,
  maxFileSize: 2 ** 40,
  maxChunkSize: 64 << 20,
  maxInnerOffset: 64 << 20,
  maxXattrsPerEntry: 1024,
  maxXattrBytesPerEntry: 1 << 20,
  maxNameBytes: MAX_NAME_BYTES,
});

export function resolveLimits(overrides: Partial<TocLimits> | undefined): TocLimits {
  const limits = { ...DEFAULT_TOC_LIMITS, ...overrides };
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`TOC limit ${key} must be a non-negative safe integer`);
  }
  return limits;
}

/** A TOC entry whose fields have been type-checked and whose name has been normalized. */
export interface CheckedEntry {
  /** Position in the TOC's entries array. */
  index: number;
  /** The name exactly as the TOC wrote it (for error messages), or undefined if absent. */
  rawName: string | undefined;
  /** Normalized relative path; "" is the root. Meaningless for chunks without a name. */
  name: string;
  type: TocEntryType;
  size: number;
  mtimeMs: number | undefined;
  linkName: string;
  mode: number;
  uid: number;
  gid: number;
  userName: string;
  groupName: string;
  offset: number;
  innerOffset: number;
  devMajor: number;
  devMinor: number;
  xattrs: ReadonlyMap<string, Buffer>;
  digest: string | undefined;
  chunkOffset: number;
  chunkSize: number;
  chunkDigest: string | undefined;
}

const UINT32_MAX = 0xffffffff;
const MAX_STRING_BYTES = 4096;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Milliseconds since the epoch for what Go's time.Parse(time.RFC3339, ...) accepts, else undefined. */
export function parseRfc3339(value: string): number | undefined {
  const m = RFC3339.exec(value);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) return undefined;
  let zoneMinutes = 0;
  const zone = m[8]!;
  if (zone !== 'Z') {
    const zh = Number(zone.slice(1, 3));
    const zm = Number(zone.slice(4, 6));
    if (zh > 23 || zm > 59) return undefined;
    zoneMinutes = (zone[0] === '-' ? -1 : 1) * (zh * 60 + zm);
  }
  // Date.UTC reads years 0-99 as 1900-1999, so build those through setUTCFullYear.
  let ms = year >= 100 ? Date.UTC(year, month - 1, day, hour, minute, second) : new Date(Date.UTC(2000, month - 1, day, hour, minute, second)).setUTCFullYear(year);
  if (m[7] !== undefined) ms += Math.floor(Number(m[7]) * 1000);
  return ms - zoneMinutes * 60_000;
}

class EntryReader {
  constructor(
    private readonly obj: Record<string, unknown>,
    private readonly label: string | undefined,
  ) {}

  fail(reason: TocErrorReason, detail: string): never {
    throw new InvalidTocError(reason, detail, this.label);
  }

  /** Go's decoder treats JSON null as "leave the zero value", so we do too. */
  raw(key: string): unknown {
    if (!Object.hasOwn(this.obj, key)) return undefined;
    const value = this.obj[key];
    return value === null ? undefined : value;
  }

  string(key: string, maxBytes = MAX_STRING_BYTES): string | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'string') this.fail('bad-field', `${key} is not a string`);
    const isName = key === 'name' || key === 'linkName';
    if (value.includes('\0')) this.fail(isName ? 'nul-in-name' : 'bad-field', `${key} contains NUL`);
    if (Buffer.byteLength(value) > maxBytes) this.fail(isName ? 'name-too-long' : 'bad-field', `${key} is too long`);
    return value;
  }

  integer(key: string, max: number, reason: TocErrorReason = 'bad-field'): number {
    const value = this.raw(key);
    if (value === undefined) return 0;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) this.fail('bad-field', `${key} is not a non-negative integer`);
    if (value > max) this.fail(reason, `${key} ${value} exceeds ${max}`);
    return value;
  }

  /** `checked`: a digest of this entry already validated; a field equal to it (a one-chunk file's chunk digest) needs no second look. */
  digest(key: string, checked?: string): string | undefined {
    const value = this.raw(key);
    if (value === undefined || value === '') return undefined;
    if (value === checked) return checked;
    // A well-formed digest is short lowercase ASCII: the string checks (NUL, byte length) cannot fail for one.
    if (typeof value !== 'string') this.fail('bad-field', `${key} is not a string`);
    if (!isDigest(value)) this.fail('bad-field', `${key} ${JSON.stringify(value)} is not a digest`);
    return value;
  }

  modtime(cache: Map<string, number>): number | undefined {
    const value = this.string('modtime');
    if (value === undefined || value === '') return undefined;
    // Layers tend to share a handful of timestamps; parse each spelling once.
    const known = cache.get(value);
    if (known !== undefined) return known;
    const ms = parseRfc3339(value);
    if (ms === undefined) this.fail('bad-field', `modtime ${JSON.stringify(value)} is not a valid RFC 3339 time`);
    cache.set(value, ms);
    return ms;
  }

  xattrs(limits: TocLimits): ReadonlyMap<string, Buffer> {
    const value = this.raw('xattrs');
    if (value === undefined) return NO_XATTRS;
    const out = new Map<string, Buffer>();
    if (typeof value !== 'object' || Array.isArray(value)) this.fail('bad-field', 'xattrs is not an object');
    const keys = Object.keys(value as object);
    if (keys.length > limits.maxXattrsPerEntry) this.fail('size-too-large', `${keys.length} xattrs exceed ${limits.maxXattrsPerEntry}`);
    let total = 0;
    for (const key of keys) {
      const encoded = (value as Record<string, unknown>)[key];
      if (key === '' || key.includes('\0') || Buffer.byteLength(key) > 255) this.fail('bad-field', `xattr name ${JSON.stringify(key)} is invalid`);
      if (encoded === null) {
        out.set(key, Buffer.alloc(0));
        continue;
      }
      if (typeof encoded !== 'string' || !BASE64.test(encoded)) this.fail('bad-field', `xattr ${JSON.stringify(key)} is not base64`);
      const decoded = Buffer.from(encoded, 'base64');
      total += Buffer.byteLength(key) + decoded.length;
      if (total > limits.maxXattrBytesPerEntry) this.fail('size-too-large', `xattrs exceed ${limits.maxXattrBytesPerEntry} bytes`);
      out.set(key, decoded);
    }
    return out;
  }
}

function checkEntry(value: unknown, index: number, limits: TocLimits, times: Map<string, number>): CheckedEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidTocError('bad-structure', `entry ${index} is not an object`);
  }
  const obj = value as Record<string, unknown>;
  const rawNameValue = Object.hasOwn(obj, 'name') ? obj['name'] : undefined;
  const label = typeof rawNameValue === 'string' ? rawNameValue : undefined;
  const r: EntryReader = new EntryReader(obj, label ?? `#${index}`);
  const type = r.raw('type');
  if (typeof type !== 'string') r.fail('bad-field', 'type is missing or not a string');
  if (!TOC_ENTRY_TYPES.has(type)) r.fail('unknown-type', `type ${JSON.stringify(type)} is not known`);
  const rawName = r.string('name', Number.MAX_SAFE_INTEGER);
  let name = '';
  if (rawName === undefined || rawName === '') {
    // Chunks need no name (they belong to the preceding file); every other entry does.
    if (type !== 'chunk') r.fail('empty-name', 'entry has no name');
  } else {
    const normalized = normalizeEntryName(rawName, limits.maxNameBytes);
    if (!normalized.ok) r.fail(normalized.problem, `name ${JSON.stringify(rawName)} is not a clean relative path`);
    name = normalized.name;
  }
  const linkName = r.string('linkName', limits.maxNameBytes) ?? '';
  if ((type === 'symlink' || type === 'hardlink') && linkName === '') r.fail('bad-field', `${type} has no linkName`);
  const digest = r.digest('digest');
  return {
    index,
    rawName,
    name,
    type: type as TocEntryType,
    size: r.integer('size', limits.maxFileSize, 'size-too-large'),
    mtimeMs: r.modtime(times),
    linkName,
    mode: r.integer('mode', UINT32_MAX),
    uid: r.integer('uid', UINT32_MAX),
    gid: r.integer('gid', UINT32_MAX),
    userName: r.string('userName') ?? '',
    groupName: r.string('groupName') ?? '',
    offset: r.integer('offset', Number.MAX_SAFE_INTEGER),
    innerOffset: r.integer('innerOffset', limits.maxInnerOffset, 'offset-out-of-range'),
    devMajor: r.integer('devMajor', UINT32_MAX),
    devMinor: r.integer('devMinor', UINT32_MAX),
    xattrs: r.xattrs(limits),
    digest,
    chunkOffset: r.integer('chunkOffset', limits.maxFileSize, 'offset-out-of-range'),
    chunkSize: r.integer('chunkSize', limits.maxChunkSize, 'size-too-large'),
    chunkDigest: r.digest('chunkDigest', digest),
  };
}

/**
 * Parses TOC JSON and type-checks its entries one by one as they are taken from
 * the iterator. Each raw entry is dropped from the parsed document once checked,
 * so a consumer that keeps only a compact form lets the garbage collector
 * reclaim the JSON object graph while the rest is still being read. Structural
 * rules that span entries (duplicates, chunk tiling, hardlinks, offsets) are
 * checked when the index is built.
 */
export function parseTocEntries(json: Uint8Array, limits: TocLimits): IterableIterator<CheckedEntry> {
  if (json.length > limits.maxTocJsonBytes) throw new InvalidTocError('toc-too-large', `TOC JSON of ${json.length} bytes exceeds ${limits.maxTocJsonBytes}`);
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8'));
  } catch (err) {
    throw new InvalidTocError('malformed-json', `TOC is not JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new InvalidTocError('bad-structure', 'TOC is not a JSON object');
  const top = doc as Record<string, unknown>;
  const version = Object.hasOwn(top, 'version') ? top['version'] : undefined;
  if (version !== 1) throw new InvalidTocError('unsupported-version', `TOC version ${JSON.stringify(version)} is not 1`);
  const entries = Object.hasOwn(top, 'entries') ? top['entries'] : undefined;
  if (entries === null || entries === undefined) return [][Symbol.iterator]();
  if (!Array.isArray(entries)) throw new InvalidTocError('bad-structure', 'TOC entries is not an array');
  if (entries.length > limits.maxEntries) throw new InvalidTocError('too-many-entries', `${entries.length} entries exceed ${limits.maxEntries}`);
  const times = new Map<string, number>();
  return (function* () {
    for (let i = 0; i < entries.length; i++) {
      const raw: unknown = entries[i];
      entries[i] = undefined;
      yield checkEntry(raw, i, limits, times);
    }
  })();
}
