import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import {
  InvalidTarError, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, TOC_TAR_NAME, TocIndex, buildEstargz, inflateChunk, openEstargz,
  type TocNode,
} from '../../../src/estargz/index.js';
import { TarReader, encodeTarHeader, paddingFor, simpleFileHeader, END_OF_ARCHIVE, type TarHeader } from '../../../src/estargz/tar.js';
import { chunksOf, convert, extractTar, packTar, type ModelEntry, type ModelType, type ParsedEntry } from './helpers.js';

const sha256 = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const BASES = ['a', 'b', 'c', 'dir', 'file.txt', 'x y', 'ünïcode', 'L'.repeat(120), 'z'];
const KINDS = ['dir', 'dir', 'file', 'file', 'file', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'whiteout', 'opaque'] as const;

// tar-stream, which builds the input, writes ids in 6 octal digits; bigger ids are covered separately.
const itemArb = fc.record({
  dir: fc.nat(),
  base: fc.constantFrom(...BASES),
  kind: fc.constantFrom(...KINDS),
  mode: fc.integer({ min: 1, max: 0o7777 }),
  uid: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0o777777 })),
  gid: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0o777777 })),
  uname: fc.constantFrom('', 'root', 'daemon'),
  gname: fc.constantFrom('', 'root', 'staff'),
  mtime: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 31 - 1 })),
  content: fc.uint8Array({ maxLength: 1200 }),
  target: fc.constantFrom('../x', '/etc/passwd', 'a', 'ünï'),
  major: fc.integer({ min: 0, max: 4095 }),
  minor: fc.integer({ min: 0, max: 4095 }),
  xattrs: fc.dictionary(fc.constantFrom('user.a', 'user.b', 'trusted.overlay.opaque', 'security.selinux'), fc.string({ minLength: 1, maxLength: 20 }), { maxKeys: 2 }),
});

type Item = typeof itemArb extends fc.Arbitrary<infer T> ? T : never;

function buildModel(items: readonly Item[]): ModelEntry[] {
  const dirs = [''];
  const files: string[] = [];
  const used = new Set<string>();
  const entries: ModelEntry[] = [];
  for (const it of items) {
    const parent = dirs[it.dir % dirs.length]!;
    const base = it.kind === 'whiteout' ? `.wh.${it.base}` : it.kind === 'opaque' ? '.wh..wh..opq' : it.base;
    const name = parent === '' ? base : `${parent}/${base}`;
    if (used.has(name)) continue;
    used.add(name);
    const common = { name, mode: it.mode, uid: it.uid, gid: it.gid, uname: it.uname, gname: it.gname, mtime: it.mtime, xattrs: { ...it.xattrs } };
    let type: ModelType;
    const extra: Partial<ModelEntry> = {};
    switch (it.kind) {
      case 'dir': type = 'directory'; dirs.push(name); break;
      case 'file': type = 'file'; extra.content = Buffer.from(it.content); files.push(name); break;
      case 'whiteout': case 'opaque': type = 'file'; extra.content = Buffer.alloc(0); files.push(name); break;
      case 'symlink': type = 'symlink'; extra.linkname = it.target; break;
      case 'hardlink':
        if (files.length === 0) {
          type = 'file';
          extra.content = Buffer.from(it.content);
          files.push(name);
        } else {
          type = 'link';
          extra.linkname = files[it.dir % files.length]!;
        }
        break;
      case 'char': case 'block': type = it.kind === 'char' ? 'character-device' : 'block-device'; extra.devmajor = it.major; extra.devminor = it.minor; break;
      case 'fifo': type = 'fifo'; break;
    }
    entries.push({ ...common, type, ...extra });
  }
  return entries;
}

function stripSlash(name: string): string {
  return name.replace(/\/+$/, '');
}

function xattrsOf(p: ParsedEntry): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.header.pax ?? {})) if (k.startsWith('SCHILY.xattr.')) out[k.slice(13)] = v;
  return out;
}

function checkTarEntry(parsed: ParsedEntry, model: ModelEntry): void {
  const h = parsed.header;
  assert.equal(stripSlash(parsed.name), model.name);
  assert.equal(h.type, model.type, model.name);
  assert.equal((h.mode ?? 0) & 0o7777, model.mode, `mode of ${model.name}`);
  assert.equal(h.uid, model.uid);
  assert.equal(h.gid, model.gid);
  assert.equal(h.uname, model.uname);
  assert.equal(h.gname, model.gname);
  assert.equal(h.mtime!.getTime() / 1000, model.mtime);
  assert.deepEqual(xattrsOf(parsed), model.xattrs ?? {});
  if (model.type === 'file') assert.deepEqual(parsed.content, model.content);
  else assert.equal(parsed.content.length, 0);
  if (model.type === 'symlink' || model.type === 'link') assert.equal(h.linkname, model.linkname);
  if (model.type === 'character-device' || model.type === 'block-device') {
    assert.equal(h.devmajor, model.devmajor);
    assert.equal(h.devminor, model.devminor);
  }
}

async function readWholeFile(blob: Buffer, node: TocNode): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const c of node.chunks) parts.push(await inflateChunk(blob.subarray(c.offset, c.compressedEnd), c));
  return Buffer.concat(parts);
}

const NODE_TYPES: Record<ModelType, string> = {
  file: 'reg', directory: 'dir', symlink: 'symlink', link: 'reg', 'character-device': 'char', 'block-device': 'block', fifo: 'fifo',
};

async function checkIndex(index: TocIndex, blob: Buffer, model: readonly ModelEntry[], chunkSize: number): Promise<void> {
  const links = new Map<string, number>();
  for (const m of model) if (m.type === 'link') links.set(m.linkname!, (links.get(m.linkname!) ?? 0) + 1);
  for (const m of model) {
    const node = index.lookup(m.name);
    assert.ok(node !== undefined, `lookup ${m.name}`);
    assert.equal(index.lookup(`/${m.name}`)?.ino, node.ino);
    const parentName = m.name.includes('/') ? m.name.slice(0, m.name.lastIndexOf('/')) : '';
    assert.equal(index.lookup(parentName)?.children?.get(m.name.slice(m.name.lastIndexOf('/') + 1))?.ino, node.ino);
    if (m.type === 'link') {
      assert.equal(node.ino, index.lookup(m.linkname!)?.ino, 'a hardlink shares its target node');
      continue;
    }
    assert.equal(node.type, NODE_TYPES[m.type]);
    assert.equal(node.mode & 0o7777, m.mode);
    assert.equal(node.statMode & 0o7777, m.mode);
    assert.equal(node.uid, m.uid);
    assert.equal(node.gid, m.gid);
    assert.equal(node.mtimeMs, m.mtime === 0 ? undefined : m.mtime * 1000);
    assert.deepEqual(Object.fromEntries([...node.xattrs].map(([k, v]) => [k, v.toString()])), m.xattrs ?? {});
    if (m.type === 'file') {
      assert.equal(node.size, m.content!.length);
      assert.equal(node.nlink, 1 + (links.get(m.name) ?? 0));
      assert.equal(node.chunks.length, Math.ceil(m.content!.length / chunkSize));
      assert.deepEqual(await readWholeFile(blob, node), m.content);
      assert.equal(node.digest, sha256(m.content!));
    }
    if (m.type === 'symlink') assert.equal(node.linkName, m.linkname);
    if (m.type === 'character-device' || m.type === 'block-device') {
      assert.equal(node.devMajor, m.devmajor);
      assert.equal(node.devMinor, m.devminor);
    }
  }
}

describe('eStargz writer', () => {
  it('round-trips random trees through gzip, tar and the TOC', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(itemArb, { maxLength: 25 }), fc.integer({ min: 1, max: 600 }), fc.array(fc.nat(), { maxLength: 3 }), async (items, chunkSize, picks) => {
        const model = buildModel(items);
        const tar = await packTar(model);
        const prioritized = model.length === 0 ? [] : [...new Set(picks.map((p) => model[p % model.length]!.name))];
        const { blob, result } = await convert(tar, { chunkSize, prioritizedFiles: prioritized });

        assert.equal(result.compressedSize, blob.length);
        assert.equal(result.compressedDigest, sha256(blob));
        const decompressed = gunzipSync(blob);
        assert.equal(result.diffId, sha256(decompressed), 'diffID is the digest of the decompressed blob');
        assert.equal(result.uncompressedSize, decompressed.length);
        assert.equal(decompressed.length % 512, 0);

        const parsed = await extractTar(decompressed);
        const names = parsed.map((p) => stripSlash(p.name));
        assert.equal(names[names.length - 1], TOC_TAR_NAME, 'the TOC is the last tar entry');
        const toc = parsed[parsed.length - 1]!;
        assert.equal(sha256(toc.content), result.tocDigest);
        const landmark = prioritized.length > 0 ? PREFETCH_LANDMARK : NO_PREFETCH_LANDMARK;
        const landmarkAt = names.indexOf(landmark);
        assert.ok(landmarkAt >= 0);
        assert.deepEqual(parsed[landmarkAt]!.content, Buffer.from([0x0f]));
        if (prioritized.length === 0) assert.equal(landmarkAt, 0);

        const body = parsed.filter((_, i) => i !== landmarkAt && i !== parsed.length - 1);
        const byName = new Map(model.map((m) => [m.name, m] as const));
        assert.equal(body.length, model.length);
        for (const p of body) checkTarEntry(p, byName.get(stripSlash(p.name))!);

        // Prioritized files (with their parents and link targets) come first, the rest keeps input order.
        const front = new Set(body.slice(0, landmarkAt).map((p) => stripSlash(p.name)));
        for (const name of prioritized) assert.ok(front.has(name), `${name} is prioritized`);
        const position = new Map(body.map((p, i) => [stripSlash(p.name), i] as const));
        for (const m of model) {
          const parent = m.name.includes('/') ? m.name.slice(0, m.name.lastIndexOf('/')) : undefined;
          if (parent !== undefined) assert.ok(position.get(parent)! < position.get(m.name)!, `${parent} before ${m.name}`);
          if (m.type === 'link') assert.ok(position.get(m.linkname!)! < position.get(m.name)!, `link target before ${m.name}`);
        }
        const rest = body.slice(landmarkAt).map((p) => stripSlash(p.name));
        const inputOrder = model.map((m) => m.name).filter((n) => !front.has(n));
        assert.deepEqual(rest, inputOrder);

        const index = await openEstargz(blob, { expectedTocDigest: result.tocDigest });
        assert.equal(index.tocDigest, result.tocDigest);
        assert.equal(index.tocOffset, result.tocOffset);
        assert.equal(index.landmark, prioritized.length > 0 ? 'prefetch' : 'no-prefetch');
        if (prioritized.length > 0) {
          for (const name of prioritized) for (const c of index.lookup(name)!.chunks) assert.ok(c.offset < index.prefetchEnd!);
        }
        await checkIndex(index, blob, model, chunkSize);
      }),
      { numRuns: 60, includeErrorInReport: true },
    );
  });

  it('accepts gzip input and produces the same blob', async () => {
    const tar = await packTar([
      { name: 'd', type: 'directory', mode: 0o755, uid: 0, gid: 0, uname: '', gname: '', mtime: 1 },
      { name: 'd/f', type: 'file', mode: 0o644, uid: 1, gid: 2, uname: 'u', gname: 'g', mtime: 2, content: Buffer.alloc(5000, 7) },
    ]);
    const plain = await convert(tar, { chunkSize: 1000 });
    const gz = await convert(gzipSync(tar), { chunkSize: 1000 });
    assert.deepEqual(gz.blob, plain.blob);
    assert.deepEqual(gz.result, plain.result);
  });

  it('keeps the last of duplicate entries at its position, as tar extraction would', async () => {
    const m = (name: string, content: string): ModelEntry => ({ name, type: 'file', mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 5, content: Buffer.from(content) });
    const tar = await packTar([m('a', 'first'), m('b', 'bee'), m('./a', 'second')]);
    const { blob } = await convert(tar);
    const parsed = await extractTar(gunzipSync(blob));
    assert.deepEqual(parsed.map((p) => p.name), [NO_PREFETCH_LANDMARK, 'b', './a', TOC_TAR_NAME]);
    const index = await openEstargz(blob);
    assert.deepEqual(await readWholeFile(blob, index.lookup('a')!), Buffer.from('second'));
  });

  it('drops landmark and TOC entries of an earlier conversion', async () => {
    const { blob: first } = await convert(await packTar([{ name: 'f', type: 'file', mode: 0o600, uid: 0, gid: 0, uname: '', gname: '', mtime: 9, content: Buffer.from('x') }]));
    const { blob: second } = await convert(gunzipSync(first), { prioritizedFiles: ['f'] });
    const names = (await extractTar(gunzipSync(second))).map((p) => p.name);
    assert.deepEqual(names, ['f', PREFETCH_LANDMARK, TOC_TAR_NAME]);
  });

  it('carries binary xattrs, big ids, long and non-UTF-8 names and sub-second mtimes byte for byte', async () => {
    const capability = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0xff, 0xfe, 0x80]);
    const longName = Buffer.from(`${'deep/'.repeat(40)}file-${'n'.repeat(150)}`);
    const latin1Name = Buffer.from([0x6c, 0xe9, 0x74, 0xe9]); // "lété" in Latin-1: not UTF-8
    const header = (nameBytes: Buffer, extra: Partial<TarHeader>): TarHeader => ({ ...simpleFileHeader('', 0), nameBytes, ...extra });
    const entries: [TarHeader, Buffer][] = [
      [header(Buffer.from('bin/ping'), { mode: 0o4755, uid: 3_000_000, gid: 4_000_000_000, size: 3, mtimeText: '1700000000.75', mtime: 1700000000, pax: [['SCHILY.xattr.security.capability', capability]] }), Buffer.from('elf')],
      [header(longName, { size: 0, unameBytes: Buffer.from('a-very-long-user-name-that-does-not-fit-ustar') }), Buffer.alloc(0)],
      [header(latin1Name, { size: 1 }), Buffer.from('!')],
      [header(Buffer.from('lnk'), { typeflag: '2', linkNameBytes: Buffer.from(`/${'t'.repeat(200)}`) }), Buffer.alloc(0)],
    ];
    const tar = Buffer.concat([...entries.flatMap(([h, data]) => [encodeTarHeader(h), data, Buffer.alloc(paddingFor(data.length))]), END_OF_ARCHIVE]);
    const { blob, result } = await convert(tar);

    const reader = new TarReader(chunksOf(gunzipSync(blob), 100));
    const seen: TarHeader[] = [];
    for (let h = await reader.next(); h !== undefined; h = await reader.next()) seen.push(h);
    const [, ping, long, latin1, lnk] = seen;
    assert.deepEqual(ping!.pax.find(([k]) => k === 'SCHILY.xattr.security.capability')?.[1], capability);
    assert.equal(ping!.uid, 3_000_000);
    assert.equal(ping!.gid, 4_000_000_000);
    assert.equal(ping!.mode, 0o4755);
    assert.equal(ping!.mtimeText, '1700000000.75');
    assert.deepEqual(long!.nameBytes, longName);
    assert.equal(long!.unameBytes.toString(), 'a-very-long-user-name-that-does-not-fit-ustar');
    assert.deepEqual(latin1!.nameBytes, latin1Name);
    assert.equal(lnk!.linkNameBytes.toString(), `/${'t'.repeat(200)}`);

    const index = await openEstargz(blob, { expectedTocDigest: result.tocDigest });
    const pingNode = index.lookup('bin/ping')!;
    assert.deepEqual(pingNode.xattrs.get('security.capability'), capability);
    assert.equal(pingNode.uid, 3_000_000);
    assert.equal(pingNode.statMode, 0o104755);
    assert.equal(pingNode.mtimeMs, 1700000001_000, 'TOC modtime is rounded to the second like Go');
    assert.equal(index.lookup(longName.toString())?.type, 'reg');
    assert.equal(index.lookup('deep')?.implicit, true, 'directories implied by paths exist');
    assert.equal(index.lookup('deep')?.statMode, 0o040755);
  });

  it('refuses unsafe or inconsistent input with InvalidTarError', async () => {
    const file = (name: string): ModelEntry => ({ name, type: 'file', mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1, content: Buffer.from('x') });
    const cases: [string, ModelEntry[], string][] = [
      ['traversal', [file('../evil')], 'unsafe-name'],
      ['absolute', [file('/etc/passwd')], 'unsafe-name'],
      ['dangling hardlink', [{ ...file('l'), type: 'link', linkname: 'nowhere', content: undefined }], 'hardlink-missing-target'],
      ['file used as directory', [file('a'), file('a/b')], 'invalid-tree'],
    ];
    for (const [what, model, reason] of cases) {
      const tar = await packTar(model);
      await assert.rejects(convert(tar), (err: unknown) => err instanceof InvalidTarError && err.reason === reason, what);
    }
    await assert.rejects(convert(await packTar([file('a')]), { prioritizedFiles: ['missing'] }), (err: unknown) => err instanceof InvalidTarError && err.reason === 'missing-prioritized-file');
    const allowed = await convert(await packTar([file('a')]), { prioritizedFiles: ['missing', 'a'], allowMissingPrioritizedFiles: true });
    assert.deepEqual(allowed.result.missingPrioritizedFiles, ['missing']);
    await assert.rejects(convert(Buffer.from('not a tar at all, just text that is long enough'.repeat(20))), InvalidTarError);
    const gz = gzipSync(await packTar([file('a')]));
    await assert.rejects(convert(gz.subarray(0, gz.length - 30)), (err: unknown) => err instanceof InvalidTarError && err.reason === 'bad-gzip');
    const truncated = (await packTar([file('a')])).subarray(0, 700);
    await assert.rejects(convert(truncated), (err: unknown) => err instanceof InvalidTarError && err.reason === 'truncated');
  });

  it('streams the blob through buildEstargz', async () => {
    const tar = await packTar([{ name: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1, content: Buffer.alloc(100_000, 1) }]);
    const { stream, result } = buildEstargz(chunksOf(tar), { chunkSize: 10_000, compressionLevel: 1 });
    const parts: Buffer[] = [];
    for await (const piece of stream) parts.push(piece as Buffer);
    const blob = Buffer.concat(parts);
    const r = await result;
    assert.equal(r.compressedSize, blob.length);
    const index = await openEstargz(blob, { expectedTocDigest: r.tocDigest });
    assert.equal(index.lookup('f')!.chunks.length, 10);
  });

  it('writes one gzip member per chunk, starting at each chunk offset', async () => {
    const content = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
    const tar = await packTar([{ name: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: 1, content }]);
    const { blob } = await convert(tar, { chunkSize: 4096 });
    const index = await openEstargz(blob);
    const chunks = index.lookup('f')!.chunks;
    assert.deepEqual(chunks.map((c) => [c.chunkOffset, c.chunkSize]), [[0, 4096], [4096, 4096], [8192, 1808]]);
    for (const c of chunks) {
      assert.deepEqual(blob.subarray(c.offset, c.offset + 3), Buffer.from([0x1f, 0x8b, 0x08]), 'a gzip header at every chunk offset');
      assert.equal(c.innerOffset, 0);
      // Each chunk inflates on its own, from its own bytes only.
      assert.deepEqual(gunzipSync(blob.subarray(c.offset, c.compressedEnd)).subarray(0, c.chunkSize), content.subarray(c.chunkOffset, c.chunkOffset + c.chunkSize));
    }
  });
});
