import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ESTARGZ_FOOTER_SIZE, extractTocJson, parseFooter } from '../../../src/estargz/index.js';
import { TocMemoryBudget, TocMemoryBudgetError, estimateTocMemory } from '../../../src/layer/index.js';
import { tocParseMemory } from '../../../src/layer/toc-budget.js';
import { UNQUEUED_TOC_COMPRESSED_BYTES } from '../../../src/layer/toc-loader.js';
import { manyEntryTocJson } from '../../bench/many-entry-toc.js';
import { FakeFetcher, buildBlob, openTestLayer, standardBlob, tempDir, type FileSpec } from './fixtures.js';

const LAYER = { ref: 'registry.test/a:1', digest: 'sha256:aa' };

describe('TOC memory budget', () => {
  it('reserves, resizes and releases, and refuses what does not fit with the layer and the figures', () => {
    const budget = new TocMemoryBudget(1000);
    const a = budget.reserve(600, LAYER);
    assert.equal(budget.usedBytes, 600);
    a.resize(400);
    assert.equal(budget.availableBytes, 600);
    const refused = (() => {
      try {
        budget.reserve(700, { ref: 'registry.test/b:1', digest: 'sha256:bb' });
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    assert.ok(refused instanceof TocMemoryBudgetError, `refused with ${String(refused)}`);
    assert.equal(refused.ref, 'registry.test/b:1');
    assert.equal(refused.digest, 'sha256:bb');
    assert.equal(refused.neededBytes, 700);
    assert.equal(refused.availableBytes, 600);
    assert.equal(refused.budgetBytes, 1000);
    assert.equal(budget.usedBytes, 400, 'a refusal takes nothing');
    // Growing past the budget is refused too, and leaves the reservation as it was.
    assert.throws(() => a.resize(1001), (err: unknown) => err instanceof TocMemoryBudgetError && err.availableBytes === 1000);
    assert.equal(a.bytes, 400);
    a.release();
    a.release();
    assert.equal(budget.usedBytes, 0, 'release is idempotent');
    assert.throws(() => new TocMemoryBudget(0), RangeError);
  });

  it('runs work in turns, one at a time, even when one fails', async () => {
    const budget = new TocMemoryBudget(1000);
    const log: string[] = [];
    const step = (name: string, fail = false) => async () => {
      log.push(`${name} start`);
      await new Promise((resolve) => setImmediate(resolve));
      log.push(`${name} end`);
      if (fail) throw new Error(name);
      return name;
    };
    const results = await Promise.allSettled([budget.inTurn(step('a')), budget.inTurn(step('b', true)), budget.inTurn(step('c'))]);
    assert.deepEqual(log, ['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
  });

  it('counts a chunk entry as a chunk however its JSON is spaced, and a file named "chunk" as a file', () => {
    const withChunk = { version: 1, entries: [{ name: 'chunk', type: 'reg', size: 10 }, { type: 'chunk', chunkOffset: 5 }, { name: 'd/', type: 'dir' }] };
    const withoutChunk = { version: 1, entries: [{ name: 'chunk', type: 'reg', size: 10 }, { name: 'e', type: 'reg' }, { name: 'd/', type: 'dir' }] };
    const compact = estimateTocMemory(Buffer.from(JSON.stringify(withChunk)));
    assert.equal(estimateTocMemory(Buffer.from(JSON.stringify(withChunk, null, 2))), compact);
    assert.equal(estimateTocMemory(Buffer.from(JSON.stringify(withChunk).replaceAll('"type":', '"type" :\n '))), compact);
    assert.ok(estimateTocMemory(Buffer.from(JSON.stringify(withoutChunk))) > compact, 'a chunk keeps less than a file');
  });

  it('estimates from the JSON alone no more than the index then keeps', async () => {
    const json = manyEntryTocJson(20_000, 1 << 30);
    const estimate = estimateTocMemory(json);
    const { parseTocIndex } = await import('../../../src/estargz/index.js');
    const { FsTree } = await import('../../../src/layer/index.js');
    const index = parseTocIndex(json, { tocOffset: 1 << 30 });
    const kept = index.estimatedBytes + FsTree.fromIndex(index).estimatedBytes;
    assert.ok(estimate > 0 && estimate <= kept, `estimate ${estimate} vs kept ${kept}`);
    // Per entry the compact index keeps a few hundred bytes at most (it was about 700 before).
    assert.ok(kept / 20_000 < 300, `${kept / 20_000} bytes per entry`);
  });
});

describe('opening layers under a TOC memory budget', () => {
  it('holds what a layer keeps while it is open and frees it on close', async () => {
    const budget = new TocMemoryBudget(64 << 20);
    const { layer } = await openTestLayer(await standardBlob(), { tocBudget: budget });
    assert.ok(layer.tocMemoryBytes > 0);
    assert.equal(budget.usedBytes, layer.tocMemoryBytes);
    await layer.close();
    assert.equal(budget.usedBytes, 0);
  });

  it('opens a layer with a small TOC while another parse holds the turn; one with a big TOC waits for it', async () => {
    const budget = new TocMemoryBudget(256 << 20);
    const files: FileSpec[] = Array.from({ length: 6000 }, (_, i) => ({ name: `d${i % 60}/file-with-a-longer-name-${i}.py`, data: Buffer.from(`${i}`) }));
    const big = await buildBlob(files);
    const footer = parseFooter(big.blob.subarray(big.blob.length - ESTARGZ_FOOTER_SIZE));
    assert.ok(big.blob.length - ESTARGZ_FOOTER_SIZE - footer.tocOffset > UNQUEUED_TOC_COMPRESSED_BYTES, 'the big TOC is over the threshold');
    let releaseTurn!: () => void;
    const held = budget.inTurn(() => new Promise<void>((resolve) => (releaseTurn = resolve)));
    const small = await Promise.race([
      openTestLayer(await standardBlob(), { tocBudget: budget }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the small TOC waited for the turn')), 5_000)),
    ]);
    let bigOpened = false;
    const bigOpen = openTestLayer({ files, ...big }, { tocBudget: budget }).then((opened) => {
      bigOpened = true;
      return opened;
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(bigOpened, false, 'the big TOC waits for the turn');
    releaseTurn();
    await held;
    const opened = await bigOpen;
    assert.equal(opened.layer.lookup('/d7/file-with-a-longer-name-4207.py')?.size, 4);
    await small.layer.close();
    await opened.layer.close();
    assert.equal(budget.usedBytes, 0);
  });

  it('a turn taken is held until given back, and the turns after it wait for that', async () => {
    const budget = new TocMemoryBudget(1 << 20);
    const order: string[] = [];
    const release = await budget.takeTurn();
    const next = budget.inTurn(async () => void order.push('next'));
    const after = budget.takeTurn().then((releaseAfter) => {
      order.push('after');
      releaseAfter();
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(order, [], 'nothing runs while the turn is held');
    release();
    release(); // twice is harmless
    await Promise.all([next, after]);
    assert.deepEqual(order, ['next', 'after']);
  });

  it('two big TOCs opened at once both fit when there is room for one parse and both layers: the second parse waits until the first layer holds only what it keeps', async () => {
    const files: FileSpec[] = Array.from({ length: 6000 }, (_, i) => ({ name: `d${i % 60}/file-with-a-longer-name-${i}.py`, data: Buffer.from(`${i}`) }));
    const big = await buildBlob(files);
    const tocOffset = parseFooter(big.blob.subarray(big.blob.length - ESTARGZ_FOOTER_SIZE)).tocOffset;
    assert.ok(big.blob.length - ESTARGZ_FOOTER_SIZE - tocOffset > UNQUEUED_TOC_COMPRESSED_BYTES, 'the TOC is big enough to take turns');
    const probe = await openTestLayer({ files, ...big }, {});
    const kept = probe.layer.tocMemoryBytes;
    await probe.layer.close();
    const { json } = await extractTocJson(big.blob.subarray(tocOffset, big.blob.length - ESTARGZ_FOOTER_SIZE), 64 << 20);
    // Room for one layer kept and another's parse, not for two parses.
    const budget = new TocMemoryBudget(kept + tocParseMemory(json) + 1024);
    assert.ok(2 * tocParseMemory(json) > budget.totalBytes);
    // With a TOC cache: the first layer writes its TOC there between its parse and its sizing.
    const dirs = [tempDir('toc-budget-'), tempDir('toc-budget-')];
    try {
      const [a, b] = await Promise.all(dirs.map((dir) => openTestLayer({ files, ...big }, { tocBudget: budget, tocCacheDir: dir.path })));
      assert.ok(budget.usedBytes <= 2 * kept + 2, `both layers hold what they keep (${budget.usedBytes} of ${budget.totalBytes})`);
      await a.layer.close();
      await b.layer.close();
      assert.equal(budget.usedBytes, 0);
    } finally {
      for (const dir of dirs) dir.remove();
    }
  });

  it('refuses a layer whose TOC does not fit, from the network and from the TOC cache, and takes nothing for it', async () => {
    const files: FileSpec[] = Array.from({ length: 5000 }, (_, i) => ({ name: `d${i % 50}/f${i}`, data: Buffer.from(`${i}`) }));
    const big = await buildBlob(files);
    const small = await standardBlob();
    const dir = tempDir('toc-budget-');
    try {
      const budget = new TocMemoryBudget(256 << 10);
      const first = await openTestLayer(small, { tocBudget: budget, tocCacheDir: dir.path });
      const held = budget.usedBytes;
      const fake = new FakeFetcher(big.blob);
      await assert.rejects(
        openTestLayer({ files, ...big }, { tocBudget: budget, tocCacheDir: dir.path, fake }),
        (err: unknown) => err instanceof TocMemoryBudgetError && err.digest === big.result.compressedDigest && err.neededBytes > err.availableBytes
          && err.availableBytes === (256 << 10) - held,
      );
      assert.equal(budget.usedBytes, held, 'the refused layer holds nothing');
      await first.layer.close();
      assert.equal(budget.usedBytes, 0);
      const roomy = new TocMemoryBudget(64 << 20);
      const second = await openTestLayer({ files, ...big }, { tocBudget: roomy, tocCacheDir: dir.path, fake: new FakeFetcher(big.blob) });
      assert.ok(second.layer.tocMemoryBytes > 256 << 10, `${second.layer.tocMemoryBytes} bytes`);
      assert.equal(second.layer.lookup('/d7/f4007')?.size, 4);
      await second.layer.close();
      assert.equal(roomy.usedBytes, 0);
      // A cached TOC that does not fit is refused too, and stays cached.
      const tight = new TocMemoryBudget(256 << 10);
      const third = openTestLayer({ files, ...big }, { tocBudget: tight, tocCacheDir: dir.path, fake: new FakeFetcher(big.blob) });
      await assert.rejects(third, TocMemoryBudgetError);
      assert.equal(tight.usedBytes, 0);
      const fourth = await openTestLayer({ files, ...big }, { tocBudget: roomy, tocCacheDir: dir.path, fake: new FakeFetcher(big.blob) });
      assert.equal(fourth.layer.stats().openedFrom, 'toc-cache', 'the refusal did not throw the cached TOC away');
      await fourth.layer.close();
    } finally {
      dir.remove();
    }
  });
});
