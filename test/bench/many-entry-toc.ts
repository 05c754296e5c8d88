// TOC JSON with very many entries, shaped like the TOCs of issue 8 item 8
// (a 2.9 MB blob, about 1 million entries, 123 MB of JSON): directories of
// 1,000 mostly empty files, one file in ten holding a few bytes.
import { createHash } from 'node:crypto';
import { encodeTocJson, type TocEntryJson } from '../../src/estargz/index.js';

const FILES_PER_DIR = 1_000;
const DATA_EVERY = 10;
const MODTIME = '2024-05-01T12:00:00Z';

/** `entries` TOC entries (directories included); data offsets are spread below tocOffset. */
export function manyEntryTocJson(entries: number, tocOffset: number): Buffer {
  const out: TocEntryJson[] = [];
  const digest = `sha256:${createHash('sha256').update('data').digest('hex')}`;
  for (let i = 0; out.length < entries; i++) {
    if (i % FILES_PER_DIR === 0) {
      out.push({ name: `d${(i / FILES_PER_DIR).toString().padStart(4, '0')}/`, type: 'dir', modtime: MODTIME, mode: 0o755 });
      if (out.length === entries) break;
    }
    const name = `d${Math.floor(i / FILES_PER_DIR).toString().padStart(4, '0')}/f${i.toString().padStart(7, '0')}`;
    if (i % DATA_EVERY === 0) {
      out.push({ name, type: 'reg', size: 4, modtime: MODTIME, mode: 0o644, offset: Math.floor((i / (entries + 1)) * tocOffset), digest, chunkDigest: digest });
    } else {
      out.push({ name, type: 'reg', modtime: MODTIME, mode: 0o644 });
    }
  }
  return encodeTocJson({ version: 1, entries: out });
}
