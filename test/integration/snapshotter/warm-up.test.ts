// The start-up warm-up runs the remote path on a made-up layer: it must go
// through every step for real (a loopback HTTP server, range requests, the
// given TOC parser, a FUSE mount read through the kernel), leave nothing
// behind, give way to real work, and name the step that failed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { inlineTocParser, type TocParser } from '../../../src/layer/index.js';
import { WarmUpError, warmUpRemotePath } from '../../../src/snapshotter/remote/warm-up.js';
import { mountLinesUnder, recordingLogger, removeTempDir, tempDir } from '../fuse/helpers.js';

const dirs: string[] = [];
async function scratch(): Promise<{ parent: string; dir: string }> {
  const parent = await tempDir('warm-up');
  dirs.push(parent);
  return { parent, dir: join(parent, 'warm-up') };
}

async function gone(path: string): Promise<boolean> {
  return access(path).then(() => false, () => true);
}

/** A parser that counts what it parsed, so the test sees the TOC really went through it. */
function countingParser(): TocParser & { parsed: number } {
  const parser = {
    parsed: 0,
    async parse(request: Parameters<TocParser['parse']>[0]) {
      parser.parsed++;
      return inlineTocParser.parse(request);
    },
    close: async () => {},
  };
  return parser;
}

describe('start-up warm-up', () => {
  after(async () => {
    for (const dir of dirs) await removeTempDir(dir, []);
  });

  it('opens, mounts and reads a made-up layer, then removes its mount and directory', async () => {
    const { parent, dir } = await scratch();
    const parser = countingParser();
    const logger = recordingLogger();
    const result = await warmUpRemotePath({ dir, tocParser: parser, logger, busy: () => false });
    assert.deepEqual(result.steps, ['parse', 'layer', 'serve', 'resolve', 'open', 'mount', 'read']);
    assert.equal(result.stoppedAt, undefined);
    assert.equal(parser.parsed, 1, 'the TOC is parsed by the parser it was given');
    // The open went over HTTP: the registry client logged its range requests.
    const gets = logger.records.filter((r) => r.obj.method === 'GET' && String(r.obj.url).startsWith('http://127.0.0.1:')).map((r) => String(r.obj.url));
    assert.ok(gets.some((url) => url.endsWith('/manifests/latest')), 'the manifest was fetched from the loopback server');
    assert.ok(gets.some((url) => url.includes('/blobs/sha256:')), 'the blob was read from the loopback server');
    assert.deepEqual(await mountLinesUnder(parent), [], 'no mount is left');
    assert.ok(await gone(dir), 'its directory is removed');
  });

  it('does nothing once real work has come', async () => {
    const { parent, dir } = await scratch();
    const parser = countingParser();
    const result = await warmUpRemotePath({ dir, tocParser: parser, logger: recordingLogger(), busy: () => true });
    assert.deepEqual(result.steps, []);
    assert.equal(result.stoppedAt, 'start');
    assert.equal(parser.parsed, 0);
    assert.deepEqual(await readdir(parent), []);
  });

  it('stops before its next step when work arrives midway, and takes its mount down', async () => {
    const { parent, dir } = await scratch();
    const parser = countingParser();
    // Work "arrives" once the made-up layer is mounted: reading it is the step left out.
    const mounted = (): boolean => readFileSync('/proc/self/mountinfo', 'utf8').includes(join(dir, 'mnt'));
    const result = await warmUpRemotePath({ dir, tocParser: parser, logger: recordingLogger(), busy: mounted });
    assert.deepEqual(result.steps, ['parse', 'layer', 'serve', 'resolve', 'open', 'mount']);
    assert.equal(result.stoppedAt, 'after mount');
    assert.deepEqual(await mountLinesUnder(parent), []);
    assert.ok(await gone(dir));
  });

  it('stops when aborted', async () => {
    const { dir } = await scratch();
    const abort = new AbortController();
    abort.abort();
    const result = await warmUpRemotePath({ dir, tocParser: countingParser(), logger: recordingLogger(), busy: () => false, signal: abort.signal });
    assert.equal(result.stoppedAt, 'start');
  });

  it('names the step that failed and still cleans up', async () => {
    const { parent, dir } = await scratch();
    const failing: TocParser = {
      parse: async () => {
        throw new Error('parser thread is gone');
      },
      close: async () => {},
    };
    await assert.rejects(
      warmUpRemotePath({ dir, tocParser: failing, logger: recordingLogger(), busy: () => false }),
      (err: unknown) => err instanceof WarmUpError && err.step === 'open' && /warm-up step "open" failed: .*parser thread is gone/.test(err.message),
    );
    assert.deepEqual(await mountLinesUnder(parent), []);
    assert.ok(await gone(dir));
  });
});
