// Background fetch must not compete with a starting container: it waits until
// no layer has been read for the idle period, pauses when reads come back, and
// stays under its bandwidth cap; left alone, it still caches the whole layer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BandwidthLimiter, ForegroundActivity } from '../../../src/layer/index.js';
import { openTestLayer, standardBlob } from './fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ForegroundActivity', () => {
  it('is idle only after the idle period without foreground work, and a new read restarts the wait', async () => {
    let now = 0;
    const activity = new ForegroundActivity(100, () => now);
    const signal = new AbortController().signal;
    let idle = false;
    const waiting = activity.waitForIdle(signal).then(() => (idle = true));
    now = 50;
    const done = activity.begin();
    now = 500;
    await sleep(150);
    assert.equal(idle, false, 'a read in flight keeps background work waiting, however long it takes');
    done();
    await sleep(20);
    assert.equal(idle, false, 'the idle period starts when the read ends');
    now = 600;
    await sleep(150);
    assert.equal(idle, true);
    await waiting;
  });

  it('lets an aborted waiter go at once', async () => {
    const activity = new ForegroundActivity(60_000);
    const ac = new AbortController();
    const waiting = activity.waitForIdle(ac.signal);
    ac.abort();
    await waiting;
  });
});

describe('BandwidthLimiter', () => {
  it('spaces requests so that their bytes stay under the cap', async () => {
    const limiter = new BandwidthLimiter(1024 * 1024); // 1 MiB/s
    const signal = new AbortController().signal;
    const started = performance.now();
    for (let i = 0; i < 4; i++) await limiter.take(64 * 1024, signal); // 256 KiB: the last one may start at 0.1875 s
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 180, `4 × 64 KiB at 1 MiB/s took ${elapsed.toFixed(0)} ms`);
  });

  it('does not wait without a cap', async () => {
    const limiter = new BandwidthLimiter(0);
    const started = performance.now();
    for (let i = 0; i < 100; i++) await limiter.take(1 << 30, new AbortController().signal);
    assert.ok(performance.now() - started < 100);
  });
});

describe('background fetch and foreground reads', () => {
  it('fetches nothing while reads keep coming within the idle period, then caches the whole layer', async () => {
    const blob = await standardBlob();
    const activity = new ForegroundActivity(300);
    const { layer, fake } = await openTestLayer(blob, { foregroundActivity: activity, backgroundRangeBytes: 64 * 1024 });
    try {
      const node = layer.lookup('/a/small.txt')!;
      await layer.read(node, 0, node.size);
      fake.reset();
      const background = layer.startBackgroundFetch();
      // A container reading every 100 ms: the 300 ms idle period never passes.
      for (let i = 0; i < 8; i++) {
        await sleep(100);
        await layer.read(node, 0, node.size);
      }
      assert.equal(fake.calls.length, 0, 'no background request while the layer is being read');
      const result = await background;
      assert.equal(result.complete, true);
      assert.equal(layer.isFullyCached(), true);
      assert.ok(fake.calls.length > 0);
    } finally {
      await layer.close();
    }
  });

  it('shares one idle period between layers: reads of one layer hold back the background fetch of another', async () => {
    const blob = await standardBlob();
    const activity = new ForegroundActivity(300);
    const reader = await openTestLayer(blob, { foregroundActivity: activity });
    const other = await openTestLayer(blob, { foregroundActivity: activity });
    try {
      const node = reader.layer.lookup('/a/small.txt')!;
      other.fake.reset();
      const background = other.layer.startBackgroundFetch();
      for (let i = 0; i < 5; i++) {
        await sleep(100);
        await reader.layer.read(node, 0, node.size);
      }
      assert.equal(other.fake.calls.length, 0);
      assert.equal((await background).complete, true);
    } finally {
      await reader.layer.close();
      await other.layer.close();
    }
  });

  it('keeps the background fetch under its bandwidth cap', async () => {
    const blob = await standardBlob();
    const bytesPerSecond = 2 * 1024 * 1024;
    const { layer, fake } = await openTestLayer(blob, {
      backgroundBandwidth: new BandwidthLimiter(bytesPerSecond), backgroundRangeBytes: 64 * 1024, backgroundFetchConcurrency: 2,
    });
    try {
      fake.reset();
      const started = performance.now();
      const result = await layer.startBackgroundFetch();
      const seconds = (performance.now() - started) / 1000;
      assert.equal(result.complete, true);
      // The first request goes at once; the rest wait for their share of the cap.
      const floor = (fake.bytes - 64 * 1024) / bytesPerSecond;
      assert.ok(seconds >= floor * 0.9, `${fake.bytes} bytes in ${seconds.toFixed(2)} s under a ${bytesPerSecond} B/s cap (floor ${floor.toFixed(2)} s)`);
    } finally {
      await layer.close();
    }
  });
});
