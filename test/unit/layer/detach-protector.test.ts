// V8 throws away optimised code when an isolate detaches its first ArrayBuffer
// (see src/layer/detach-protector.ts); lazysnap's processes and its TOC parse
// worker do that on purpose when they start, before anything is optimised.
// V8 reports the event with --trace-protector-invalidation.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const INVALIDATED = 'Invalidating protector cell ArrayBufferDetaching';
const cli = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const parserModule = new URL('../../../src/layer/thread-toc-parser.js', import.meta.url).href;

function invalidations(output: string): number {
  return output.split('\n').filter((line) => line.includes(INVALIDATED)).length;
}

describe('detaching an ArrayBuffer when an isolate starts', () => {
  it('is done by the CLI process before any command runs', async () => {
    const { stdout } = await run(process.execPath, ['--trace-protector-invalidation', cli, '--help']);
    assert.equal(invalidations(stdout), 1, stdout);
  });

  it('is done by the TOC parse worker when it starts, before it has parsed anything', async () => {
    // A parser with no warm-up, never asked to parse: whatever detaches in this process happens in its worker's start-up.
    // CommonJS -e with a dynamic import: the worker inherits the process's flags, and --input-type would stop it.
    const script = `
      import(${JSON.stringify(parserModule)}).then(async ({ ThreadTocParser }) => {
        const fail = (message) => { console.error(message); process.exitCode = 1; };
        const parser = new ThreadTocParser({ logger: { debug() {}, info() {}, warn: fail, error: fail }, warmUpRounds: 0 });
        await new Promise((resolve) => setTimeout(resolve, 1500));
        await parser.close();
      });
    `;
    const { stdout } = await run(process.execPath, ['--trace-protector-invalidation', '-e', script]);
    assert.equal(invalidations(stdout), 1, stdout);
  });
});
