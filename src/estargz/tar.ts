import { InvalidTarError } from './errors.js';

/**
 * A small streaming tar codec. We parse tars ourselves rather than through a library
 * because an eStargz writer must carry PAX records byte for byte: xattr values such
 * as security.capability are binary, and a UTF-8 decoding step would corrupt them.
 */

export type PaxRecord = readonly [key: string, value: Buffer];

export type TarTypeflag = '0' | '1' | '2' | '3' | '4' | '5' | '6';

export interface TarHeader {
  /** Raw name bytes after GNU long-name and PAX `path` overrides. */
  nameBytes: Buffer;
  linkNameBytes: Buffer;
  typeflag: TarTypeflag;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Whole seconds since the epoch (may be negative). */
  mtime: number;
  /** The PAX `mtime` text when the archive had one, kept for its sub-second precision. */
  mtimeText: string | undefined;
  unameBytes: Buffer;
  gnameBytes: Buffer;
  devMajor: number;
  devMinor: number;
  /** PAX records that apply to this entry (global ones merged under local ones), in archive order. */
  pax: PaxRecord[];
}

export const BLOCK = 512;
const MAX_SPECIAL_FILE = 1 << 20;

export function paddingFor(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** Pulls exact byte counts out of an async stream of chunks. */
class ByteSource {
  private readonly iterator: AsyncIterator<Uint8Array | string>;
  private readonly queue: Buffer[] = [];
  private buffered = 0;
  private ended = false;

  constructor(source: AsyncIterable<Uint8Array | string>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** Ensures at least n bytes are buffered; false when the stream ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.ended) {
      const next = await this.iterator.next();
      if (next.done === true) {
        this.ended = true;
        break;
      }
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      if (chunk.length > 0) {
        this.queue.push(chunk);
        this.buffered += chunk.length;
      }
    }
    return this.buffered >= n;
  }

  get available(): number {
    return this.buffered;
  }

  /** Takes up to n buffered bytes without waiting. */
  take(n: number): Buffer {
    const want = Math.min(n, this.buffered);
    if (want === 0) return Buffer.alloc(0);
    const first = this.queue[0]!;
    if (first.length >= want) {
      this.buffered -= want;
      if (first.length === want) this.queue.shift();
      else this.queue[0] = first.subarray(want);
      return first.subarray(0, want);
    }
    const out = Buffer.allocUnsafe(want);
    let filled = 0;
    while (filled < want) {
      const head = this.queue[0]!;
      const part = Math.min(head.length, want - filled);
      head.copy(out, filled, 0, part);
      filled += part;
      if (part === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(part);
    }
    this.buffered -= want;
    return out;
  }

  async readExact(n: number, what: string): Promise<Buffer> {
    if (!(await this.fill(n))) throw new InvalidTarError('truncated', `archive ends inside ${what}`);
    return this.take(n);
  }

  async skip(n: number, what: string): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill(1))) throw new InvalidTarError('truncated', `archive ends inside ${what}`);
      left -= this.take(left).length;
    }
  }

  async close(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      await this.iterator.return?.();
    }
  }
}

function cString(block: Buffer, start: number, length: number): Buffer {
  const field = block.subarray(start, start + length);
  const nul = field.indexOf(0);
  return Buffer.from(nul < 0 ? field : field.subarray(0, nul));
}

/** Octal (with the space/NUL padding real tars use) or GNU base-256 numeric field. */
function numericField(block: Buffer, start: number, length: number, what: string): number {
  const field = block.subarray(start, start + length);
  if ((field[0]! & 0x80) !== 0) {
    const negative = field[0] === 0xff;
    let value = BigInt(field[0]! & 0x7f) - (negative ? 0x80n : 0n);
    for (let i = 1; i < field.length; i++) value = (value << 8n) | BigInt(field[i]!);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) throw new InvalidTarError('bad-header', `${what} out of range`);
    return Number(value);
  }
  const text = field.toString('latin1').replace(/^[ \0]+/, '').replace(/[ \0].*$/s, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new InvalidTarError('bad-header', `${what} field is not octal`);
  const value = parseInt(text, 8);
  if (!Number.isSafeInteger(value)) throw new InvalidTarError('bad-header', `${what} out of range`);
  return value;
}

function checksumMatches(block: Buffer): boolean {
  const stored = numericField(block, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b >= 0x80 ? b - 0x100 : b;
  }
  return stored === unsigned || stored === signed;
}

export function parsePaxRecords(data: Buffer): PaxRecord[] {
  const records: PaxRecord[] = [];
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // some writers NUL-pad the record block
    const space = data.indexOf(0x20, pos);
    if (space < 0 || space - pos > 20) throw new InvalidTarError('bad-pax', 'record length missing');
    const lengthText = data.toString('latin1', pos, space);
    if (!/^[0-9]+$/.test(lengthText)) throw new InvalidTarError('bad-pax', 'record length is not decimal');
    const length = parseInt(lengthText, 10);
    const end = pos + length;
    if (length <= space - pos + 1 || end > data.length || data[end - 1] !== 0x0a) throw new InvalidTarError('bad-pax', 'record length is wrong');
    const body = data.subarray(space + 1, end - 1);
    const eq = body.indexOf(0x3d);
    if (eq <= 0) throw new InvalidTarError('bad-pax', 'record has no key');
    records.push([body.toString('utf8', 0, eq), Buffer.from(body.subarray(eq + 1))]);
    pos = end;
  }
  return records;
}

function decimalRecord(value: Buffer, key: string): number {
  const text = value.toString('latin1');
  if (!/^[0-9]+$/.test(text)) throw new InvalidTarError('bad-pax', `PAX ${key} is not a decimal integer`);
  const n = parseInt(text, 10);
  if (!Number.isSafeInteger(n)) throw new InvalidTarError('bad-pax', `PAX ${key} out of range`);
  return n;
}

function parseMtimeText(text: string): number {
  if (!/^-?[0-9]+(\.[0-9]*)?$/.test(text)) throw new InvalidTarError('bad-pax', 'PAX mtime is not a decimal number');
  const seconds = Math.floor(Number(text));
  if (!Number.isSafeInteger(seconds)) throw new InvalidTarError('bad-pax', 'PAX mtime out of range');
  return seconds;
}

/** Reads a tar stream entry by entry; an entry's body must be read or is skipped on next(). */
export class TarReader {
  private readonly source: ByteSource;
  private bodyLeft = 0;
  private padLeft = 0;
  private globalPax: PaxRecord[] = [];
  private done = false;

  constructor(source: AsyncIterable<Uint8Array | string>) {
    this.source = new ByteSource(source);
  }

  /** The next entry's header, or undefined at the end of the archive. */
  async next(): Promise<TarHeader | undefined> {
    if (this.done) return undefined;
    await this.source.skip(this.bodyLeft + this.padLeft, 'an entry body');
    this.bodyLeft = 0;
    this.padLeft = 0;
    let longName: Buffer | undefined;
    let longLink: Buffer | undefined;
    let localPax: PaxRecord[] | undefined;
    for (;;) {
      if (!(await this.source.fill(BLOCK))) {
        if (this.source.available === 0 && longName === undefined && longLink === undefined && localPax === undefined) {
          this.done = true;
          return undefined;
        }
        throw new InvalidTarError('truncated', 'archive ends inside a header');
      }
      const block = this.source.take(BLOCK);
      if (block.every((b) => b === 0)) {
        if (longName !== undefined || longLink !== undefined || localPax !== undefined) throw new InvalidTarError('bad-header', 'extension header without an entry');
        // The first zero block ends the archive; what follows (a second zero block, padding) is not ours to read.
        this.done = true;
        await this.source.close();
        return undefined;
      }
      if (!checksumMatches(block)) throw new InvalidTarError('bad-checksum', 'header checksum mismatch');
      const flag = String.fromCharCode(block[156]!);
      const size = numericField(block, 124, 12, 'size');
      if (size < 0) throw new InvalidTarError('bad-header', 'negative size');
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        if (size > MAX_SPECIAL_FILE) throw new InvalidTarError('bad-header', `extension header of ${size} bytes is too large`);
        const data = await this.source.readExact(size, 'an extension header');
        await this.source.skip(paddingFor(size), 'padding');
        if (flag === 'x') localPax = [...(localPax ?? []), ...parsePaxRecords(data)];
        else if (flag === 'g') this.globalPax = mergePax(this.globalPax, parsePaxRecords(data));
        else if (flag === 'L') longName = cString(data, 0, data.length);
        else longLink = cString(data, 0, data.length);
        continue;
      }
      const header = this.decodeHeader(block, flag, size, longName, longLink, localPax);
      this.bodyLeft = header.size;
      this.padLeft = paddingFor(header.size);
      return header;
    }
  }

  private decodeHeader(block: Buffer, flag: string, rawSize: number, longName: Buffer | undefined, longLink: Buffer | undefined, localPax: PaxRecord[] | undefined): TarHeader {
    const magic = block.toString('latin1', 257, 263);
    const isUstar = magic === 'ustar\0';
    const isGnu = magic === 'ustar ';
    let nameBytes = cString(block, 0, 100);
    if (isUstar && block[345] !== 0) nameBytes = Buffer.concat([cString(block, 345, 155), Buffer.from('/'), nameBytes]);
    if (longName !== undefined) nameBytes = longName;
    const linkNameBytes = longLink ?? cString(block, 157, 100);
    const hasOwnerNames = isUstar || isGnu;
    const header: TarHeader = {
      nameBytes,
      linkNameBytes,
      typeflag: '0',
      mode: numericField(block, 100, 8, 'mode'),
      uid: numericField(block, 108, 8, 'uid'),
      gid: numericField(block, 116, 8, 'gid'),
      size: rawSize,
      mtime: numericField(block, 136, 12, 'mtime'),
      mtimeText: undefined,
      unameBytes: hasOwnerNames ? cString(block, 265, 32) : Buffer.alloc(0),
      gnameBytes: hasOwnerNames ? cString(block, 297, 32) : Buffer.alloc(0),
      devMajor: hasOwnerNames ? numericField(block, 329, 8, 'devmajor') : 0,
      devMinor: hasOwnerNames ? numericField(block, 337, 8, 'devminor') : 0,
      pax: mergePax(this.globalPax, localPax ?? []),
    };
    for (const [key, value] of header.pax) {
      if (key.startsWith('GNU.sparse.')) throw new InvalidTarError('unsupported-type', 'GNU sparse files are not supported', nameBytes.toString('utf8'));
      // An empty value means "no override" (POSIX: it deletes a global setting).
      if (value.length === 0) continue;
      switch (key) {
        case 'path': header.nameBytes = value; break;
        case 'linkpath': header.linkNameBytes = value; break;
        case 'size': header.size = decimalRecord(value, key); break;
        case 'uid': header.uid = decimalRecord(value, key); break;
        case 'gid': header.gid = decimalRecord(value, key); break;
        case 'uname': header.unameBytes = value; break;
        case 'gname': header.gnameBytes = value; break;
        case 'mtime': header.mtimeText = value.toString('latin1'); header.mtime = parseMtimeText(header.mtimeText); break;
        default: break;
      }
    }
    const name = header.nameBytes.toString('utf8');
    switch (flag) {
      case '\0':
      case '0':
      case '7': // contiguous file: a regular file everywhere that matters
        header.typeflag = header.nameBytes.length > 0 && header.nameBytes[header.nameBytes.length - 1] === 0x2f && flag === '\0' ? '5' : '0';
        break;
      case '1': case '2': case '3': case '4': case '5': case '6':
        header.typeflag = flag;
        break;
      default:
        throw new InvalidTarError('unsupported-type', `tar entry type ${JSON.stringify(flag)} is not supported`, name);
    }
    return header;
  }

  /** The next piece (at most max bytes) of the current entry's body, or undefined when it is all read. */
  async readBody(max = 1 << 20): Promise<Buffer | undefined> {
    if (this.bodyLeft === 0) return undefined;
    if (this.source.available === 0 && !(await this.source.fill(1))) throw new InvalidTarError('truncated', 'archive ends inside an entry body');
    const piece = this.source.take(Math.min(max, this.bodyLeft));
    this.bodyLeft -= piece.length;
    return piece;
  }
}

function mergePax(base: PaxRecord[], over: PaxRecord[]): PaxRecord[] {
  if (over.length === 0) return base;
  const overKeys = new Set(over.map(([k]) => k));
  return [...base.filter(([k]) => !overKeys.has(k)), ...over];
}

// ---------------------------------------------------------------- encoding

const OCTAL_7 = 0o7777777;
const OCTAL_11 = 0o77777777777;

function isAscii(b: Buffer): boolean {
  for (const c of b) if (c >= 0x80 || c === 0) return false;
  return true;
}

function writeOctal(block: Buffer, start: number, length: number, value: number): void {
  block.write(value.toString(8).padStart(length - 1, '0') + '\0', start, length, 'latin1');
}

function writeBase256(block: Buffer, start: number, length: number, value: number): void {
  let v = BigInt(value);
  for (let i = length - 1; i > 0; i--) {
    block[start + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  block[start] = 0x80;
}

/** Splits a name into ustar prefix and name fields, as POSIX allows, or undefined if it cannot be done. */
function splitUstarName(name: Buffer): [prefix: Buffer, name: Buffer] | undefined {
  if (name.length <= 100) return [Buffer.alloc(0), name];
  for (let i = Math.min(name.length - 1, 155); i > 0; i--) {
    if (name[i] === 0x2f && name.length - i - 1 <= 100 && name.length - i - 1 > 0) return [name.subarray(0, i), name.subarray(i + 1)];
  }
  return undefined;
}

export function encodePaxRecords(records: readonly PaxRecord[]): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of records) {
    const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
    // The length prefix counts its own digits, so settle it by iteration.
    let length = body.length + 1;
    while (body.length + String(length).length !== length) length = body.length + String(length).length;
    parts.push(Buffer.from(String(length), 'latin1'), body);
  }
  return Buffer.concat(parts);
}

function ustarBlock(fields: {
  name: Buffer; prefix: Buffer; mode: number; uid: number; gid: number; size: number; mtime: number;
  typeflag: string; linkName: Buffer; uname: Buffer; gname: Buffer; devMajor: number; devMinor: number;
}): Buffer {
  const block = Buffer.alloc(BLOCK);
  fields.name.copy(block, 0, 0, Math.min(100, fields.name.length));
  writeOctal(block, 100, 8, fields.mode & OCTAL_7);
  writeOctal(block, 108, 8, fields.uid);
  writeOctal(block, 116, 8, fields.gid);
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, fields.mtime);
  block.write(fields.typeflag, 156, 1, 'latin1');
  fields.linkName.copy(block, 157, 0, Math.min(100, fields.linkName.length));
  block.write('ustar\x0000', 257, 8, 'latin1');
  fields.uname.copy(block, 265, 0, Math.min(32, fields.uname.length));
  fields.gname.copy(block, 297, 0, Math.min(32, fields.gname.length));
  if (fields.devMajor <= OCTAL_7) writeOctal(block, 329, 8, fields.devMajor);
  else writeBase256(block, 329, 8, fields.devMajor);
  if (fields.devMinor <= OCTAL_7) writeOctal(block, 337, 8, fields.devMinor);
  else writeBase256(block, 337, 8, fields.devMinor);
  fields.prefix.copy(block, 345, 0, Math.min(155, fields.prefix.length));
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return block;
}

/** Keys whose values we derive from the header fields, so stale input copies must not survive. */
const DERIVED_KEYS = new Set(['path', 'linkpath', 'size', 'uid', 'gid', 'uname', 'gname', 'mtime']);

/**
 * Encodes a header as ustar, preceded by a PAX extended header when a value does not fit
 * ustar (long or non-ASCII names, big ids or sizes, sub-second mtimes) or when the entry
 * carries PAX records of its own (xattrs and the like), which are kept verbatim.
 */
export function encodeTarHeader(h: TarHeader): Buffer {
  const records: PaxRecord[] = h.pax.filter(([key]) => !DERIVED_KEYS.has(key));
  let name = h.nameBytes;
  let prefix: Buffer = Buffer.alloc(0);
  const split = isAscii(h.nameBytes) ? splitUstarName(h.nameBytes) : undefined;
  if (split !== undefined) [prefix, name] = split;
  else records.push(['path', h.nameBytes]);
  let linkName = h.linkNameBytes;
  if (h.linkNameBytes.length > 100 || !isAscii(h.linkNameBytes)) {
    records.push(['linkpath', h.linkNameBytes]);
    linkName = Buffer.alloc(0);
  }
  let size = h.size;
  if (size > OCTAL_11) {
    records.push(['size', Buffer.from(String(size))]);
    size = 0;
  }
  let uid = h.uid;
  if (uid < 0 || uid > OCTAL_7) {
    records.push(['uid', Buffer.from(String(uid))]);
    uid = 0;
  }
  let gid = h.gid;
  if (gid < 0 || gid > OCTAL_7) {
    records.push(['gid', Buffer.from(String(gid))]);
    gid = 0;
  }
  let uname = h.unameBytes;
  if (uname.length > 32 || !isAscii(uname)) {
    records.push(['uname', uname]);
    uname = Buffer.alloc(0);
  }
  let gname = h.gnameBytes;
  if (gname.length > 32 || !isAscii(gname)) {
    records.push(['gname', gname]);
    gname = Buffer.alloc(0);
  }
  let mtime = h.mtime;
  if (h.mtimeText !== undefined || mtime < 0 || mtime > OCTAL_11) {
    records.push(['mtime', Buffer.from(h.mtimeText ?? String(mtime), 'latin1')]);
    mtime = Math.min(Math.max(mtime, 0), OCTAL_11);
  }
  const main = ustarBlock({ name, prefix, mode: h.mode, uid, gid, size, mtime, typeflag: h.typeflag, linkName, uname, gname, devMajor: h.devMajor, devMinor: h.devMinor });
  if (records.length === 0) return main;
  const data = encodePaxRecords(records);
  const base = h.nameBytes.subarray(h.nameBytes.lastIndexOf(0x2f, h.nameBytes.length - 2) + 1);
  const paxName = Buffer.concat([Buffer.from('PaxHeaders.0/'), isAscii(base) ? base : Buffer.from('entry')]).subarray(0, 100);
  const paxHeader = ustarBlock({
    name: paxName, prefix: Buffer.alloc(0), mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: 0,
    typeflag: 'x', linkName: Buffer.alloc(0), uname: Buffer.alloc(0), gname: Buffer.alloc(0), devMajor: 0, devMinor: 0,
  });
  return Buffer.concat([paxHeader, data, Buffer.alloc(paddingFor(data.length)), main]);
}

/** A plain regular-file header with no owner or time, as used for the TOC and landmark entries. */
export function simpleFileHeader(name: string, size: number, mode = 0o644): TarHeader {
  return {
    nameBytes: Buffer.from(name), linkNameBytes: Buffer.alloc(0), typeflag: '0', mode, uid: 0, gid: 0, size,
    mtime: 0, mtimeText: undefined, unameBytes: Buffer.alloc(0), gnameBytes: Buffer.alloc(0), devMajor: 0, devMinor: 0, pax: [],
  };
}

export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
