/**
 * A made-up TOC shaped like a real layer's (directories of small files,
 * one multi-chunk file each, symlinks, hardlinks, xattrs), parsed a few
 * times when the daemon starts. V8 compiles the parser's hot loops to
 * optimised code only after it has seen them run; without this, the first
 * image a fresh daemon pulls (the common case on a node that just booted)
 * pays that start-up on its critical path: a 13,000-entry TOC took 130 ms
 * cold against 55 ms warm. Twelve rounds of 500 entries were not enough for
 * V8 to optimise the per-entry loops: the probe image's 1,509-entry TOC then
 * still took 15-18 ms on its first parse (32 ms cold); after twelve rounds of
 * 2,000 it takes 8-12 ms. Since the parser got cheaper and the TOC mixes
 * entry shapes, six rounds do as well as twelve (first parse of the probe's
 * 1,509-entry TOC on the worker: 18-24 ms against 14-17 ms; 49-61 ms with no
 * warm-up; the 13,031-entry TOC within noise) for half the CPU, ~120 ms,
 * which a node that starts its daemon and its first pull together shares.
 */
import { encodeTocJson, parseTocIndex, type TocEntryJson } from '../estargz/index.js';

const MIB = 1024 * 1024;

function fakeDigest(n: number): string {
  return `sha256:${n.toString(16).padStart(64, '0')}`;
}

/**
 * How the entries of one directory are written. Real TOCs differ in which
 * fields they carry (no modtime in reproducible builds, owners other than
 * root, with or without names), and each combination is another object
 * shape to V8: warmed up on one shape only, the parser's optimised code was
 * thrown away at the first real TOC of another, whose first parse then cost
 * as much as a cold one.
 */
const FLAVOURS: ReadonlyArray<Pick<TocEntryJson, 'modtime' | 'uid' | 'gid' | 'userName' | 'groupName'>> = [
  { modtime: '2024-01-01T00:00:00Z' },
  {},
  { modtime: '2023-06-30T12:34:56Z', uid: 1000, gid: 1000, userName: 'app', groupName: 'app' },
  { uid: 1000, gid: 100 },
];

/** TOC JSON with about `entries` entries, and the TOC offset that bounds its data offsets. */
export function syntheticToc(entries: number): { json: Buffer; tocOffset: number } {
  const out: TocEntryJson[] = [];
  let offset = 0;
  const next = (): number => (offset += 512);
  for (let dir = 0; out.length < entries; dir++) {
    const d = `usr/lib/python3/site-packages/d${dir}`;
    const owner = FLAVOURS[dir % FLAVOURS.length]!;
    out.push({ name: `${d}/`, type: 'dir', mode: 0o755, ...owner });
    out.push({ name: `${d}/big`, type: 'reg', size: 9 * MIB, mode: 0o644, ...owner, offset: next(), digest: fakeDigest(offset), chunkSize: 4 * MIB, chunkDigest: fakeDigest(offset + 1) });
    out.push({ name: `${d}/big`, type: 'chunk', offset: next(), chunkOffset: 4 * MIB, chunkSize: 4 * MIB, chunkDigest: fakeDigest(offset + 1) });
    out.push({ name: `${d}/big`, type: 'chunk', offset: next(), chunkOffset: 8 * MIB, chunkDigest: fakeDigest(offset + 1) });
    for (let file = 0; file < 16; file++) {
      // Short and long base names: the index keeps long ones differently (see TocBuilder.flattenInterned).
      const name = file % 2 === 0 ? `f${file}.so` : `module_${file}.cpython-311.pyc`;
      out.push({ name: `${d}/${name}`, type: 'reg', size: 1000 + file, mode: 0o755, ...owner, offset: next(), digest: fakeDigest(offset), chunkDigest: fakeDigest(offset) });
    }
    out.push({ name: `${d}/empty`, type: 'reg', mode: 0o644, ...owner });
    out.push({ name: `${d}/link`, type: 'symlink', linkName: 'f2.so', mode: 0o777, ...owner });
    out.push({ name: `${d}/hard`, type: 'hardlink', linkName: `${d}/f2.so` });
    out.push({ name: `${d}/caps`, type: 'reg', size: 10, mode: 0o755, ...owner, offset: next(), digest: fakeDigest(offset), chunkDigest: fakeDigest(offset), xattrs: { 'security.capability': 'AQAAAgAgAAAAAAAAAAAAAAAAAAA=' } });
  }
  return { json: encodeTocJson({ version: 1, entries: out }), tocOffset: offset + 512 };
}

/**
 * Parses a small synthetic TOC `rounds` times, yielding to the event loop
 * between rounds and stopping early once `stop()` says real work is waiting:
 * a warm-up must never delay the parse it is meant to speed up.
 */
export async function warmUpTocParsing(stop: () => boolean, rounds = 6, entries = 2000): Promise<void> {
  const { json, tocOffset } = syntheticToc(entries);
  for (let i = 0; i < rounds && !stop(); i++) {
    parseTocIndex(json, { tocOffset });
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
