// `npm run bench`: runs the benchmarks, prints their tables and writes JSON
// to bench-results/. Select some with: npm run bench -- snapshotter
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { benchCliStartup } from './cli-startup.bench.js';
import { benchLazyLayer } from './lazy-layer.bench.js';
import { benchSnapshotter } from './snapshotter.bench.js';
import { benchStartup } from './startup.bench.js';
import { benchThreeWay } from './three-way.bench.js';

const BENCHES: Record<string, () => Promise<{ text: string }>> = {
  snapshotter: benchSnapshotter,
  'lazy-layer': benchLazyLayer,
  startup: benchStartup,
  'three-way': benchThreeWay,
  'cli-startup': benchCliStartup,
};

const wanted = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(BENCHES);
const outDir = join(process.cwd(), 'bench-results');
mkdirSync(outDir, { recursive: true });
for (const name of wanted) {
  const bench = BENCHES[name];
  if (!bench) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
  const started = new Date().toISOString();
  const result = await bench();
  console.log(`\n== ${name} ==\n${result.text}\n`);
  const file = join(outDir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ benchmark: name, started, ...result }, null, 2));
  console.log(`wrote ${file}`);
}
