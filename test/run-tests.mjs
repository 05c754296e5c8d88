// Runs the compiled test files with node's test runner.
// Usage: node test/run-tests.mjs [unit|integration|e2e ...]
// Suites run one file at a time: integration and e2e tests start real daemons
// (containerd, registry) and mount filesystems, which must not interleave.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('../dist/test/', import.meta.url).pathname;
const suites = process.argv.slice(2);
const wanted = suites.length > 0 ? suites : ['unit', 'integration', 'e2e'];

function collect(dir) {
  let out = [];
  let names;
  try { names = readdirSync(dir).sort(); } catch { return out; }
  for (const name of names) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out = out.concat(collect(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const files = wanted.flatMap((suite) => collect(join(root, suite)));
if (files.length === 0) {
  console.error(`no test files found for ${wanted.join(', ')} under ${root}`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
