import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { describe, it } from 'node:test';
import { DEFAULT_TOC_LIMITS, InvalidTocError, TocDigestMismatchError, encodeTocJson, type TocIndex } from '../../../src/estargz/index.js';
import { LayerError, ThreadTocParser, inlineTocParser, silentLogger, type TocParseRequest } from '../../../src/layer/index.js';
import { syntheticToc } from '../../../src/layer/toc-warm-up.js';
import { INLINE_FROM_JSON_BYTES } from '../../../src/layer/thread-toc-parser.js';
import { manyEntryTocJson } from '../../bench/many-entry-toc.js';
import { contentOf, openTestLayer, standardBlob, standardFiles } from './fixtures.js';

function request(json: Buffer, tocOffset: number, expectedTocDigest?: string): TocParseRequest {
  return { json, tocOffset, expectedTocDigest, limits: DEFAULT_TOC_LIMITS, requireChunkDigests: true };
}

/** Everything a mounted layer reads from an index, as plain data. */
function describeIndex(index: TocIndex): unknown {
  const nodes = [...index.paths()].map(([path, n]) => ({
    path, ino: n.ino, type: n.type, mode: n.statMode, uid: n.uid, gid: n.gid, user: n.userName, group: n.groupName, size: n.size,
    mtime: n.mtimeMs, link: n.linkName, dev: [n.devMajor, n.devMinor], nlink: n.nlink, digest: n.digest,
    xattrs: [...n.xattrs].map(([k, v]) => [k, v.toString('hex'), Buffer.isBuffer(v)]), chunks: n.chunks,
  }));
  return { tocDigest: index.tocDigest, tocOffset: index.tocOffset, entries: index.entryCount, landmark: index.landmark, nodes, all: index.allChunks(), bytes: index.estimatedBytes };
}

async function withParser<T>(...args: [work: (parser: ThreadTocParser) => Promise<T>] | [make: () => ThreadTocParser, work: (parser: ThreadTocParser) => Promise<T>]): Promise<T> {
  const [make, work] = args.length === 1 ? [() => new ThreadTocParser({ logger: silentLogger }), args[0]] : args;
  const parser = make();
  try {
    return await work(parser);
  } finally {
    await parser.close();
  }
}

describe('TOC parsing on a worker thread', () => {
  it('gives the index parsing inline gives: paths, attributes, chunks, digests, links, devices and xattrs', async () => {
    await withParser(async (parser) => {
      const { json, tocOffset } = syntheticToc(400);
      const threaded = (await parser.parse(request(json, tocOffset))).index;
      const inline = (await inlineTocParser.parse(request(json, tocOffset))).index;
      assert.ok(threaded.chunkCount > 100 && [...threaded.root.children!.keys()].length > 0);
      assert.deepEqual(describeIndex(threaded), describeIndex(inline));
    });
  });

  it('opens a layer whose files read back as written', async () => {
    await withParser(async (parser) => {
      const blob = await standardBlob();
      const { layer } = await openTestLayer(blob, { tocParser: parser });
      try {
        for (const name of ['a/big.bin', 'a/small.txt', 'mid.bin']) {
          const node = layer.lookup(name);
          assert.ok(node, name);
          const expected = contentOf(standardFiles(), name);
          assert.deepEqual(await layer.read(node, 0, expected.length + 10), expected, name);
        }
      } finally {
        await layer.close();
      }
    });
  });

  it('refuses a bad TOC with the same typed error as inline: reason, entry, digests', async () => {
    await withParser(async (parser) => {
      const evil = encodeTocJson({ version: 1, entries: [{ name: '../escape', type: 'reg' }] });
      const inline = await inlineTocParser.parse(request(evil, 1000)).catch((err: unknown) => err);
      const threaded = await parser.parse(request(evil, 1000)).catch((err: unknown) => err);
      assert.ok(inline instanceof InvalidTocError && threaded instanceof InvalidTocError, String(threaded));
      assert.equal(threaded.reason, inline.reason);
      assert.equal(threaded.entryName, '../escape');
      assert.equal(threaded.message, inline.message);

      const { json, tocOffset } = syntheticToc(50);
      const wrong = `sha256:${'0'.repeat(64)}`;
      const mismatch = await parser.parse(request(json, tocOffset, wrong)).catch((err: unknown) => err);
      assert.ok(mismatch instanceof TocDigestMismatchError, String(mismatch));
      assert.equal(mismatch.expected, wrong);
      assert.match(mismatch.actual, /^sha256:[0-9a-f]{64}$/);
      // The worker is still serving.
      assert.equal((await parser.parse(request(json, tocOffset))).index.entryCount, (await inlineTocParser.parse(request(json, tocOffset))).index.entryCount);
    });
  });

  it('fails the parses of a worker that died, and serves the next one with a new worker', async () => {
    await withParser(async (parser) => {
      const { json, tocOffset } = syntheticToc(100);
      const worker = (parser as unknown as { worker: import('node:worker_threads').Worker }).worker;
      const pending = parser.parse(request(json, tocOffset));
      await worker.terminate();
      const err = await pending.then(() => undefined, (e: unknown) => e);
      // Either the parse won the race with the kill, or it failed with a layer error saying why.
      if (err !== undefined) assert.ok(err instanceof LayerError && /worker/.test(err.message), String(err));
      assert.ok((await parser.parse(request(json, tocOffset))).index.entryCount > 90);
    });
  });

  it('keeps the event loop free while a big TOC is parsed', async () => {
    await withParser(async (parser) => {
      const json = manyEntryTocJson(60_000, 1 << 30);
      const digest = createHash('sha256').update(json).digest('hex');
      await parser.parse(request(syntheticToc(10).json, syntheticToc(10).tocOffset)); // worker up
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      let parsed;
      try {
        parsed = await parser.parse(request(json, 1 << 30));
      } finally {
        clearInterval(timer);
      }
      // Parsed inline, the same TOC would hold the loop for the whole parse: no tick at all.
      assert.ok(ticks >= 3, `only ${ticks} timer ticks ran during the parse`);
      assert.equal(parsed.index.entryCount, 60_000);
      // The JSON went to the worker and came back whole (the TOC cache writes it next).
      assert.equal(createHash('sha256').update(parsed.json).digest('hex'), digest);
    });
  });

  it('retires the worker after a big TOC and parses the next one on a new worker; parses a huge one inline', async () => {
    await withParser(async (parser) => {
      const internals = parser as unknown as { worker: import('node:worker_threads').Worker | undefined };
      const first = internals.worker;
      const big = manyEntryTocJson(100_000, 1 << 30);
      assert.ok(big.length > 8 * 2 ** 20 && big.length < INLINE_FROM_JSON_BYTES);
      assert.equal((await parser.parse(request(big, 1 << 30))).index.entryCount, 100_000);
      assert.equal(internals.worker, undefined, 'the worker that parsed it is gone');
      // A huge one does not start a worker for itself.
      const huge = manyEntryTocJson(140_000, 1 << 30);
      assert.ok(huge.length >= INLINE_FROM_JSON_BYTES);
      assert.equal((await parser.parse(request(huge, 1 << 30))).index.entryCount, 140_000);
      assert.equal(internals.worker, undefined, 'parsed inline');
      const { json, tocOffset } = syntheticToc(100);
      assert.ok((await parser.parse(request(json, tocOffset))).index.entryCount > 90);
      assert.ok(internals.worker !== undefined && internals.worker !== first);
    });
  });

  it('parses TOCs below inlineBelowJsonBytes on the calling thread, bigger ones on the worker', async () => {
    const parser = new ThreadTocParser({ logger: silentLogger, inlineBelowJsonBytes: 64 * 1024 });
    try {
      const small = syntheticToc(50);
      const big = syntheticToc(2000);
      assert.ok(small.json.length < 64 * 1024 && big.json.length >= 64 * 1024);
      const inline = await parser.parse(request(small.json, small.tocOffset));
      assert.equal(inline.workerMs, undefined, 'no worker time: parsed inline');
      assert.ok(inline.index.entryCount > 40);
      const threaded = await parser.parse(request(big.json, big.tocOffset));
      assert.equal(typeof threaded.workerMs, 'number', 'parsed on the worker');
      assert.ok(threaded.index.entryCount > 1900);
    } finally {
      await parser.close();
    }
  });

  it('stops warming up when told that real work has come, and still parses', async () => {
    /** The worker thread's busy share of the next `ms`, from its event loop utilisation. */
    const busyShare = async (parser: ThreadTocParser, ms: number): Promise<number> => {
      const { performance } = (parser as unknown as { worker: Worker }).worker;
      const before = performance.eventLoopUtilization();
      await new Promise((resolve) => setTimeout(resolve, ms));
      return performance.eventLoopUtilization(before).utilization;
    };
    const settle = (ms: number): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, ms));
    // A warm-up far longer than the test, so the one not told to stop is surely still at it.
    const long = (): ThreadTocParser => new ThreadTocParser({ logger: silentLogger, warmUpRounds: 1000 });
    await withParser(long, async (warming) => {
      await withParser(long, async (stopped) => {
        await settle(300); // both workers are up and warming up
        stopped.stopWarmUp();
        await settle(100); // the round in progress ends
        const [warmingShare, stoppedShare] = await Promise.all([busyShare(warming, 200), busyShare(stopped, 200)]);
        assert.ok(warmingShare > 0.3, `the other worker is still warming up (busy ${warmingShare.toFixed(2)})`);
        assert.ok(stoppedShare < 0.15, `the stopped worker is idle (busy ${stoppedShare.toFixed(2)})`);
        const { json, tocOffset } = syntheticToc(300);
        assert.equal((await stopped.parse(request(json, tocOffset))).index.entryCount, JSON.parse(json.toString('utf8')).entries.length);
      });
    });
  });

  it('does not keep an idle process alive', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lazysnap-parser-'));
    try {
      const module = fileURLToPath(new URL('../../../src/layer/index.js', import.meta.url));
      const script = join(dir, 'idle.mjs');
      writeFileSync(script, `const { ThreadTocParser, silentLogger } = await import(${JSON.stringify(module)});\nnew ThreadTocParser({ logger: silentLogger });\nconsole.log('started');\n`);
      const child = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(child.error, undefined, 'the process exited by itself');
      assert.equal(child.status, 0, child.stderr);
      assert.equal(child.stdout.trim(), 'started');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
