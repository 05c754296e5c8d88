// Memory a layer's TOC keeps once it is parsed: the TocIndex and the FsTree a
// FUSE mount serves, as RemoteLayer builds them. Each size runs in its own
// child process so that one measurement's garbage cannot blur the next.
//
//   npm run build && node --expose-gc dist/test/bench/toc-memory.js 100000 250000 1000000
//
// Prints retained memory (JS heap + ArrayBuffers) and RSS growth per 100k TOC entries, and the peak RSS
// of the whole parse (maxRSS minus the RSS before it).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTocIndex } from '../../src/estargz/index.js';
import { FsTree } from '../../src/layer/fs-tree.js';
import { estimateTocMemory } from '../../src/layer/toc-budget.js';
import { manyEntryTocJson } from './many-entry-toc.js';

const TOC_OFFSET = 1 << 30;

interface Measurement {
  entries: number;
  jsonBytes: number;
  /** JS heap plus ArrayBuffer backing stores (where typed arrays keep their data). */
  heapBytes: number;
  rssBytes: number;
  peakRssBytes: number;
  parseMs: number;
  /** What the layer would reserve of the TOC memory budget: before the parse, and after. */
  estimateBefore: number;
  estimateAfter: number;
}

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i++) gc();
}

/** In the child: parse one TOC file and report what stays alive. */
function measure(file: string, entries: number): Measurement {
  collect();
  const before = process.memoryUsage();
  let json: Buffer | undefined = readFileSync(file);
  const jsonBytes = json.length;
  const estimateBefore = estimateTocMemory(json);
  const started = performance.now();
  const index = parseTocIndex(json, { tocOffset: TOC_OFFSET });
  const tree = FsTree.fromIndex(index);
  const parseMs = performance.now() - started;
  json = undefined;
  const peakRssBytes = process.resourceUsage().maxRSS * 1024 - before.rss;
  collect();
  const after = process.memoryUsage();
  // Keep both alive until measured.
  if (tree.nodeCount === 0 || index.entryCount !== entries) throw new Error(`parsed ${index.entryCount} entries, expected ${entries}`);
  return {
    entries, jsonBytes, heapBytes: after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers, rssBytes: after.rss - before.rss, peakRssBytes, parseMs,
    estimateBefore, estimateAfter: index.estimatedBytes + tree.estimatedBytes,
  };
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}

if (process.argv[2] === '--child') {
  const [file, entries] = [process.argv[3]!, Number(process.argv[4])];
  process.stdout.write(JSON.stringify(measure(file, entries)));
} else {
  const sizes = process.argv.slice(2).map(Number);
  const dir = mkdtempSync(join(tmpdir(), 'toc-memory-'));
  try {
    console.log('entries    JSON MiB  heap MiB  RSS MiB  peak RSS MiB  heap/100k  RSS/100k  parse ms  budget MiB (before/after parse)');
    for (const entries of sizes.length > 0 ? sizes : [100_000, 250_000, 1_000_000]) {
      const file = join(dir, `${entries}.json`);
      writeFileSync(file, manyEntryTocJson(entries, TOC_OFFSET));
      const child = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', fileURLToPath(import.meta.url), '--child', file, String(entries)], { encoding: 'utf8' });
      if (child.status !== 0) throw new Error(`measuring ${entries} entries failed: ${child.stderr}`);
      const m = JSON.parse(child.stdout) as Measurement;
      const per100k = 100_000 / m.entries;
      console.log([
        String(m.entries).padEnd(10), mib(m.jsonBytes).padStart(8), mib(m.heapBytes).padStart(9), mib(m.rssBytes).padStart(8), mib(m.peakRssBytes).padStart(13),
        mib(m.heapBytes * per100k).padStart(10), mib(m.rssBytes * per100k).padStart(9), m.parseMs.toFixed(0).padStart(9), `  ${mib(m.estimateBefore)} / ${mib(m.estimateAfter)}`,
      ].join(' '));
      rmSync(file);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
