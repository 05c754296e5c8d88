/**
 * Builds a TocTable from type-checked TOC entries, one entry at a time, and
 * enforces every rule that spans entries: no duplicate paths, chunks tiling
 * their file exactly, data before the TOC, no two chunks at one spot,
 * hardlinks to existing non-directories without cycles, parents that are
 * directories. Entries are not kept: whatever the caller drops after handing
 * one over can be collected while the rest is read.
 */
import { DigestTable } from './digest-table.js';
import { InvalidTocError, type TocErrorReason } from './errors.js';
import { GrowableArray } from './growable.js';
import { baseOf, normalizeEntryName, parentOf } from './names.js';
import { DIR, NODE_TYPES, REG, TocTable, type DeviceNumbers, type TocNodeType } from './toc-table.js';
import type { CheckedEntry, TocLimits } from './validate.js';

export interface TocIndexBuildOptions {
  tocOffset: number;
  tocDigest: string;
  limits: TocLimits;
  requireChunkDigests: boolean;
}

/** What an error message needs of an entry once the entry itself is gone. */
interface EntryLabel {
  rawName: string | undefined;
  index: number;
}

interface OpenFile extends EntryLabel {
  node: number;
  name: string;
  size: number;
  covered: number;
}

interface PendingHardlink extends EntryLabel {
  name: string;
  linkName: string;
}

/** V8 keeps a substring of 13+ characters as a view that pins its whole parent string. */
const SLICED_STRING_MIN = 13;

function fail(reason: TocErrorReason, detail: string, entry: EntryLabel): never {
  throw new InvalidTocError(reason, detail, entry.rawName ?? `#${entry.index}`);
}

export class TocBuilder {
  private readonly tocOffset: number;
  private readonly limits: TocLimits;
  private readonly requireChunkDigests: boolean;
  /** Path to node number; a hardlink's path maps to -(its index in hardlinks + 1). */
  private readonly byName = new Map<string, number>();
  /** Raw spellings of explicit names that differ from the normalized one, for error messages. */
  private readonly rawNames = new Map<string, EntryLabel>();
  private readonly hardlinks: PendingHardlink[] = [];
  private readonly userNames = new Map<number, string>();
  private readonly groupNames = new Map<number, string>();
  private readonly interned = new Map<string, string>();
  /** Interned strings long enough to be slices of others, not yet copied (see flattenInterned). */
  private unflattened: string[] = [];
  private readonly stringIds = new Map<string, number>();
  private readonly strings: string[] = [];
  private stringBytes = 0;
  private readonly digests = new DigestTable();
  private readonly linkNames = new Map<number, string>();
  private readonly devices = new Map<number, DeviceNumbers>();
  private readonly xattrs = new Map<number, ReadonlyMap<string, Buffer>>();
  private entryCount = 0;
  private open: OpenFile | undefined;
  private rootProblem: (EntryLabel & { type: string }) | undefined;

  private readonly node = {
    type: new GrowableArray(Uint8Array),
    mode: new GrowableArray(Uint32Array),
    uid: new GrowableArray(Uint32Array),
    gid: new GrowableArray(Uint32Array),
    userName: new GrowableArray(Uint32Array),
    groupName: new GrowableArray(Uint32Array),
    size: new GrowableArray(Float64Array),
    mtimeMs: new GrowableArray(Float64Array),
    implicit: new GrowableArray(Uint8Array),
    digest: new GrowableArray(Int32Array),
    chunkStart: new GrowableArray(Uint32Array),
    chunkCount: new GrowableArray(Uint32Array),
    parent: new GrowableArray(Uint32Array),
  };
  private readonly nodeNames: string[] = [];

  private readonly chunk = {
    file: new GrowableArray(Uint32Array),
    chunkOffset: new GrowableArray(Float64Array),
    chunkSize: new GrowableArray(Float64Array),
    offset: new GrowableArray(Float64Array),
    compressedEnd: new GrowableArray(Float64Array),
    innerOffset: new GrowableArray(Float64Array),
    digest: new GrowableArray(Int32Array),
  };

  constructor(options: TocIndexBuildOptions) {
    this.tocOffset = options.tocOffset;
    this.limits = options.limits;
    this.requireChunkDigests = options.requireChunkDigests;
    this.stringId(''); // strings[0]: the name of nobody, for implicit directories
    this.addNode(DIR, '', 0o755, undefined, true); // the root, until the TOC lists it
  }

  add(entry: CheckedEntry): void {
    this.entryCount++;
    if (entry.type === 'chunk') {
      const open = this.open;
      if (open === undefined) fail('chunk-without-file', 'chunk does not follow a non-empty regular file', entry);
      if (entry.rawName !== undefined && entry.rawName !== '' && entry.name !== open.name) {
        fail('chunk-name-mismatch', `chunk names a different file than ${JSON.stringify(open.rawName)}`, entry);
      }
      this.addChunk(open, entry);
      return;
    }
    this.closeFile();
    const { name } = entry;
    if (this.byName.has(name)) fail('duplicate-entry', 'path appears twice in the TOC', entry);
    if (entry.rawName !== name) this.rawNames.set(name, { rawName: entry.rawName, index: entry.index });
    // Writers record a user or group name only when it changes for that id.
    if (entry.userName !== '') this.userNames.set(entry.uid, entry.userName);
    else entry.userName = this.userNames.get(entry.uid) ?? '';
    if (entry.groupName !== '') this.groupNames.set(entry.gid, entry.groupName);
    else entry.groupName = this.groupNames.get(entry.gid) ?? '';

    if (entry.type === 'hardlink') {
      this.byName.set(name, -(this.hardlinks.push({ name, linkName: entry.linkName, rawName: entry.rawName, index: entry.index })));
      if (name === '') this.rootProblem = { type: 'hardlink', rawName: entry.rawName, index: entry.index };
      return;
    }
    const type = NODE_TYPES.indexOf(entry.type as TocNodeType);
    let node: number;
    if (name === '' && type === DIR) {
      node = 0;
      this.describeNode(0, type, entry);
    } else {
      // A root that is not a directory still gets a node, so its chunks are checked like any file's.
      if (name === '') this.rootProblem = { type: entry.type, rawName: entry.rawName, index: entry.index };
      node = this.addNode(type, baseOf(name), entry.mode, entry, false);
    }
    if (name !== '' || type === DIR) this.byName.set(name, node);
    if (type === REG) {
      if (entry.size > 0) {
        this.node.chunkStart.set(node, this.chunk.file.length);
        this.open = { node, name, size: entry.size, covered: 0, rawName: entry.rawName, index: entry.index };
        this.addChunk(this.open, entry);
      } else if (entry.chunkSize !== 0 || entry.chunkOffset !== 0) {
        fail('chunk-overflow', 'empty file has chunk fields', entry);
      }
    }
  }

  finish(): { table: TocTable; entryCount: number } {
    this.closeFile();
    const chunksByOffset = this.computeCompressedEnds();
    if (this.rootProblem !== undefined) fail('root-not-directory', `root entry is a ${this.rootProblem.type}`, this.rootProblem);
    const hardlinkTargets = this.resolveHardlinks();
    const dirents = this.attachNames(hardlinkTargets);
    this.digests.seal();
    const nodes = {
      type: this.node.type.finish(),
      mode: this.node.mode.finish(),
      uid: this.node.uid.finish(),
      gid: this.node.gid.finish(),
      userName: this.node.userName.finish(),
      groupName: this.node.groupName.finish(),
      size: this.node.size.finish(),
      mtimeMs: this.node.mtimeMs.finish(),
      nlink: new Uint32Array(this.node.type.length),
      implicit: this.node.implicit.finish(),
      digest: this.node.digest.finish(),
      chunkStart: this.node.chunkStart.finish(),
      chunkCount: this.node.chunkCount.finish(),
      parent: this.node.parent.finish(),
      name: this.nodeNames,
      direntStart: new Uint32Array(this.node.type.length),
      direntCount: new Uint32Array(this.node.type.length),
    };
    this.flattenInterned();
    const flat = (value: string): string => this.flattened(value);
    nodes.name = this.nodeNames.map(flat);
    dirents.name = dirents.name.map(flat);
    for (const [id, target] of this.linkNames) this.linkNames.set(id, flat(target));
    const laidOut = layOutDirents(dirents, nodes);
    const table = new TocTable({
      nodes,
      chunks: {
        file: this.chunk.file.finish(),
        chunkOffset: this.chunk.chunkOffset.finish(),
        chunkSize: this.chunk.chunkSize.finish(),
        offset: this.chunk.offset.finish(),
        compressedEnd: this.chunk.compressedEnd.finish(),
        innerOffset: this.chunk.innerOffset.finish(),
        digest: this.chunk.digest.finish(),
      },
      dirents: laidOut,
      chunksByOffset,
      strings: this.strings.map(flat),
      digests: this.digests,
      linkNames: this.linkNames,
      devices: this.devices,
      xattrs: this.xattrs,
      stringBytes: this.stringBytes,
    });
    return { table, entryCount: this.entryCount };
  }

  /**
   * One shared copy of each distinct name. A long one may still be a slice
   * of a longer string (a base name of its path): finish() replaces those
   * with copies that pin nothing else.
   */
  private intern(value: string): string {
    const known = this.interned.get(value);
    if (known !== undefined) return known;
    this.interned.set(value, value);
    if (value.length >= SLICED_STRING_MIN) this.unflattened.push(value);
    this.stringBytes += 24 + value.length * 2;
    return value;
  }

  /**
   * The interned long strings as slices of one string that holds just them:
   * joined and split again, which costs a fifth of copying each one alone
   * (8 ms of a 13,000-entry TOC's parse). Names never hold NUL (checked as
   * they were read); should one, each string is copied alone instead.
   */
  private flattenInterned(): void {
    const originals = this.unflattened;
    if (originals.length === 0) return;
    let copies = originals.join('\0').split('\0');
    if (copies.length !== originals.length) copies = originals.map((value) => Buffer.from(value, 'utf8').toString('utf8'));
    for (let i = 0; i < originals.length; i++) this.interned.set(originals[i]!, copies[i]!);
    this.unflattened = [];
  }

  /** What finish() keeps in place of an interned string. */
  private flattened(value: string): string {
    return value.length >= SLICED_STRING_MIN ? (this.interned.get(value) ?? value) : value;
  }

  private stringId(value: string): number {
    let id = this.stringIds.get(value);
    if (id === undefined) {
      id = this.strings.push(this.intern(value)) - 1;
      this.stringIds.set(value, id);
    }
    return id;
  }

  private addNode(type: number, name: string, mode: number, entry: CheckedEntry | undefined, implicit: boolean): number {
    const n = this.node;
    const id = n.type.push(type);
    n.mode.push(mode);
    n.uid.push(0);
    n.gid.push(0);
    n.userName.push(0);
    n.groupName.push(0);
    n.size.push(0);
    n.mtimeMs.push(Number.NaN);
    n.implicit.push(implicit ? 1 : 0);
    n.digest.push(-1);
    n.chunkStart.push(this.chunk.file.length);
    n.chunkCount.push(0);
    n.parent.push(0);
    this.nodeNames.push(this.intern(name));
    if (entry !== undefined) this.describeNode(id, type, entry);
    return id;
  }

  private describeNode(id: number, type: number, entry: CheckedEntry): void {
    const n = this.node;
    n.type.set(id, type);
    n.mode.set(id, entry.mode);
    n.uid.set(id, entry.uid);
    n.gid.set(id, entry.gid);
    n.userName.set(id, this.stringId(entry.userName));
    n.groupName.set(id, this.stringId(entry.groupName));
    n.mtimeMs.set(id, entry.mtimeMs ?? Number.NaN);
    n.implicit.set(id, 0);
    const kind = NODE_TYPES[type];
    if (kind === 'reg') {
      n.size.set(id, entry.size);
      if (entry.digest !== undefined) n.digest.set(id, this.digests.add(entry.digest));
    }
    if (kind === 'symlink') this.linkNames.set(id, this.intern(entry.linkName));
    if (kind === 'char' || kind === 'block') this.devices.set(id, { major: entry.devMajor, minor: entry.devMinor });
    if (entry.xattrs.size > 0) this.xattrs.set(id, entry.xattrs);
  }

  private addChunk(file: OpenFile, entry: CheckedEntry): void {
    const { limits, tocOffset } = this;
    if (entry.chunkOffset < file.covered) fail('chunk-overlap', `chunk at ${entry.chunkOffset} overlaps data up to ${file.covered}`, entry);
    if (entry.chunkOffset > file.covered) fail('chunk-gap', `chunk at ${entry.chunkOffset} leaves a gap after ${file.covered}`, entry);
    const size = entry.chunkSize === 0 ? file.size - entry.chunkOffset : entry.chunkSize;
    if (size <= 0 || entry.chunkOffset + size > file.size) fail('chunk-overflow', `chunk [${entry.chunkOffset}, +${size}) exceeds file size ${file.size}`, entry);
    if (size > limits.maxChunkSize) fail('size-too-large', `chunk of ${size} bytes exceeds ${limits.maxChunkSize}`, entry);
    if (entry.offset >= tocOffset) fail('offset-out-of-range', `data offset ${entry.offset} is not before the TOC at ${tocOffset}`, entry);
    let chunkDigest = entry.chunkDigest;
    // Unchunked files from older writers carry only the file digest, which then covers the one chunk.
    if (chunkDigest === undefined && entry.type === 'reg' && size === entry.size) chunkDigest = entry.digest;
    if (chunkDigest === undefined && this.requireChunkDigests) fail('missing-chunk-digest', 'chunk has no chunkDigest', entry);
    const c = this.chunk;
    c.file.push(file.node);
    c.chunkOffset.push(entry.chunkOffset);
    c.chunkSize.push(size);
    c.offset.push(entry.offset);
    c.compressedEnd.push(tocOffset);
    c.innerOffset.push(entry.innerOffset);
    c.digest.push(chunkDigest === undefined ? -1 : this.chunkDigestRef(file, entry, chunkDigest));
    this.node.chunkCount.set(file.node, this.node.chunkCount.get(file.node) + 1);
    file.covered += size;
  }

  /** A one-chunk file's chunk digest is its file digest: the file's reference is reused without a lookup. */
  private chunkDigestRef(file: OpenFile, entry: CheckedEntry, chunkDigest: string): number {
    if (entry.type === 'reg' && chunkDigest === entry.digest) return this.node.digest.get(file.node);
    return this.digests.add(chunkDigest);
  }

  private closeFile(): void {
    const open = this.open;
    if (open !== undefined && open.covered !== open.size) fail('chunk-incomplete', `chunks cover ${open.covered} of ${open.size} bytes`, open);
    this.open = undefined;
  }

  /**
   * A chunk's gzip data runs at most to the next larger data offset (the TOC
   * offset for the last). Sorting also exposes two chunks claiming one spot.
   */
  private computeCompressedEnds(): Uint32Array {
    const offset = this.chunk.offset.finish();
    const inner = this.chunk.innerOffset.finish();
    const order = new Uint32Array(offset.length);
    for (let i = 0; i < order.length; i++) order[i] = i;
    order.sort((a, b) => offset[a]! - offset[b]! || inner[a]! - inner[b]!);
    let end = this.tocOffset;
    for (let i = order.length - 1; i >= 0; i--) {
      const chunk = order[i]!;
      const next = i + 1 < order.length ? order[i + 1]! : -1;
      if (next >= 0 && offset[next] === offset[chunk] && inner[next] === inner[chunk]) {
        throw new InvalidTocError('duplicate-chunk-offset', `two chunks start at offset ${offset[chunk]}+${inner[chunk]}`, this.nameOfNode(this.chunk.file.get(next)));
      }
      if (next >= 0 && offset[next]! > offset[chunk]!) end = offset[next]!;
      this.chunk.compressedEnd.set(chunk, end);
    }
    return order;
  }

  /** Only for error messages: names are not kept per node while building. */
  private nameOfNode(node: number): string {
    for (const [name, id] of this.byName) if (id === node) return name;
    return `#node${node}`;
  }

  private labelOf(name: string): EntryLabel {
    return this.rawNames.get(name) ?? { rawName: name, index: -1 };
  }

  /** The node each hardlink names, following chains of links. */
  private resolveHardlinks(): Int32Array {
    const { hardlinks, byName, limits } = this;
    const resolved = new Int32Array(hardlinks.length).fill(-1);
    const resolveLink = (startIndex: number): number => {
      const chain: number[] = [];
      const seen = new Set<number>();
      let current = startIndex;
      for (;;) {
        const link = hardlinks[current]!;
        if (seen.has(current)) fail('hardlink-cycle', 'hardlinks form a cycle', hardlinks[startIndex]!);
        seen.add(current);
        chain.push(current);
        const target = normalizeEntryName(link.linkName, limits.maxNameBytes);
        if (!target.ok) fail(target.problem, `hardlink target ${JSON.stringify(link.linkName)} is not a clean relative path`, link);
        const id = byName.get(target.name);
        if (id === undefined) fail('hardlink-missing-target', `hardlink target ${JSON.stringify(link.linkName)} is not in the TOC`, link);
        let node = id;
        if (id < 0) {
          const known = resolved[-id - 1]!;
          if (known < 0) {
            current = -id - 1;
            continue;
          }
          node = known;
        }
        if (this.node.type.get(node) === DIR) fail('hardlink-to-directory', `hardlink target ${JSON.stringify(link.linkName)} is a directory`, link);
        for (const c of chain) resolved[c] = node;
        return node;
      }
    };
    for (let h = 0; h < hardlinks.length; h++) {
      if (hardlinks[h]!.name === '') fail('root-not-directory', 'root entry is a hardlink', hardlinks[h]!);
      if (resolved[h]! < 0) resolveLink(h);
    }
    return resolved;
  }

  /** Attaches every name to its parent directory, creating the directories the TOC implies but omits. */
  private attachNames(hardlinkTargets: Int32Array): PendingDirents {
    const { byName } = this;
    const dirents: PendingDirents = { parent: new GrowableArray(Uint32Array), name: [], node: new GrowableArray(Uint32Array) };
    const maxNodes = this.limits.maxEntries * 2 + 1;
    const nodeOf = (id: number): number => (id < 0 ? hardlinkTargets[-id - 1]! : id);
    const directoryFor = (dirName: string, child: string): number => {
      const missing: string[] = [];
      let cursor = dirName;
      let found = cursor === '' ? 0 : byName.get(cursor);
      while (found === undefined) {
        missing.push(cursor);
        cursor = parentOf(cursor);
        found = cursor === '' ? 0 : byName.get(cursor);
      }
      let node = nodeOf(found);
      if (this.node.type.get(node) !== DIR) fail('parent-not-directory', `${JSON.stringify(cursor)} is a ${NODE_TYPES[this.node.type.get(node)]}, not a directory`, this.labelOf(child));
      for (let i = missing.length - 1; i >= 0; i--) {
        const name = missing[i]!;
        if (this.node.type.length + this.hardlinks.length >= maxNodes) throw new InvalidTocError('too-many-entries', `index would exceed ${maxNodes} nodes`);
        const dir = this.addNode(DIR, baseOf(name), 0o755, undefined, true);
        this.node.parent.set(dir, node);
        byName.set(name, dir);
        pushDirent(dirents, node, this.nodeNames[dir]!, dir);
        node = dir;
      }
      return node;
    };
    // Map iteration is insertion order: the TOC's. Implicit directories added on the way are skipped.
    for (const [name, id] of byName) {
      if (name === '' || (id >= 0 && this.node.implicit.get(id) === 1)) continue;
      const parent = directoryFor(parentOf(name), name);
      if (id >= 0) this.node.parent.set(id, parent);
      pushDirent(dirents, parent, id >= 0 ? this.nodeNames[id]! : this.intern(baseOf(name)), nodeOf(id));
    }
    return dirents;
  }
}

interface PendingDirents {
  parent: GrowableArray<Uint32Array>;
  name: string[];
  node: GrowableArray<Uint32Array>;
}

function pushDirent(dirents: PendingDirents, parent: number, name: string, node: number): void {
  dirents.parent.push(parent);
  dirents.name.push(name);
  dirents.node.push(node);
}

/**
 * Groups dirents by directory (keeping TOC order within each), adds the
 * name-sorted permutation, and counts links: names for non-directories,
 * 2 + subdirectories for directories.
 */
function layOutDirents(pending: PendingDirents, nodes: { type: Uint8Array; nlink: Uint32Array; direntStart: Uint32Array; direntCount: Uint32Array }): TocTable['dirents'] {
  const total = pending.node.length;
  const { direntStart, direntCount, nlink, type } = nodes;
  for (let i = 0; i < total; i++) direntCount[pending.parent.get(i)]!++;
  let start = 0;
  for (let n = 0; n < direntCount.length; n++) {
    direntStart[n] = start;
    start += direntCount[n]!;
  }
  const fill = new Uint32Array(direntCount.length);
  const name: string[] = new Array<string>(total);
  const node = new Uint32Array(total);
  for (let i = 0; i < total; i++) {
    const parent = pending.parent.get(i);
    const at = direntStart[parent]! + fill[parent]!++;
    name[at] = pending.name[i]!;
    node[at] = pending.node.get(i);
    if (type[node[at]!] === DIR) nlink[parent]!++;
    else nlink[node[at]!]!++;
  }
  const sorted = new Uint32Array(total);
  for (let i = 0; i < total; i++) sorted[i] = i;
  for (let n = 0; n < direntCount.length; n++) {
    if (type[n] === DIR) nlink[n]! += 2;
    const count = direntCount[n]!;
    if (count > 1) sorted.subarray(direntStart[n]!, direntStart[n]! + count).sort((a, b) => (name[a]! < name[b]! ? -1 : name[a]! > name[b]! ? 1 : 0));
  }
  return { name, node, sorted };
}
