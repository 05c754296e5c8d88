// How much of a layer is local and where its background fetch is: what
// `lazysnap status` and the metrics report per layer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ForegroundActivity, LayerFetchError, LayerUnavailableError, bufferFetcher, observedFetcher, type FetchEvent } from '../../../src/layer/index.js';
import { FakeFetcher, buildBlob, openTestLayer, standardBlob } from './fixtures.js';

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('layer progress', () => {
  it('counts cached chunk bytes against all of them, and the bytes fetched', async () => {
    const blob = await standardBlob();
    const { layer } = await openTestLayer(blob);
    try {
      const opened = layer.progress();
      const chunkBytes = layer.index.allChunks().reduce((sum, chunk) => sum + chunk.compressedEnd - chunk.offset, 0);
      assert.equal(opened.chunkBytes, chunkBytes);
      assert.equal(opened.cachedBytes, 0);
      assert.equal(opened.blobSize, blob.blob.length);
      assert.equal(opened.backgroundFetch, 'not-started');
      assert.ok(opened.fetchedBytes > 0, 'the TOC was fetched');
      const node = layer.lookup('/a/small.txt')!;
      await layer.read(node, 0, node.size);
      const read = layer.progress();
      assert.ok(read.cachedBytes > 0 && read.cachedBytes < chunkBytes);
      assert.ok(read.fetchedBytes > opened.fetchedBytes);
    } finally {
      await layer.close();
    }
  });

  it('background fetch: waiting for idle, fetching, then done with every chunk cached', async () => {
    const blob = await standardBlob();
    const fake = new FakeFetcher(blob.blob);
    const { layer } = await openTestLayer(blob, { fake, foregroundActivity: new ForegroundActivity(300), backgroundRangeBytes: 1 << 30 });
    try {
      fake.hold();
      const finished = layer.startBackgroundFetch();
      // The idle period (300 ms) has only just begun.
      assert.equal(layer.progress().backgroundFetch, 'waiting-for-idle');
      // Then it fetches; the held request keeps it there until released.
      await until('fetching', () => layer.progress().backgroundFetch === 'fetching');
      fake.release();
      await finished;
      const done = layer.progress();
      assert.equal(done.backgroundFetch, 'done');
      assert.equal(done.cachedBytes, done.chunkBytes);
    } finally {
      await layer.close();
    }
  });

  it('background fetch that gives up on a range is incomplete', async () => {
    const blob = await standardBlob();
    const fake = new FakeFetcher(blob.blob);
    const { layer } = await openTestLayer(blob, { fake, backgroundRangeBytes: 1 << 30 });
    try {
      fake.mode = 'fail';
      await layer.startBackgroundFetch();
      assert.equal(layer.progress().backgroundFetch, 'incomplete');
    } finally {
      await layer.close();
    }
  });

  it('a blob that does not hash to its digest is poisoned', async () => {
    const blob = await standardBlob();
    const other = await buildBlob([{ name: 'x.txt', data: Buffer.from('another blob') }]);
    const { layer } = await openTestLayer(blob, { digest: other.result.compressedDigest });
    try {
      await layer.startBackgroundFetch();
      assert.equal(layer.progress().backgroundFetch, 'poisoned');
    } finally {
      await layer.close();
    }
  });
});

describe('observed fetcher', () => {
  const blob = Buffer.from('0123456789');

  it('reports every request with kind, outcome, bytes and time', async () => {
    const events: FetchEvent[] = [];
    const fetcher = observedFetcher(bufferFetcher(blob), 'r/x:1', 'sha256:abc', (event) => events.push(event));
    const signal = new AbortController().signal;
    assert.deepEqual(Buffer.from(await fetcher(2, 3, signal)), Buffer.from('234'));
    assert.equal((await fetcher.tail!(4, signal)).size, 10);
    assert.equal(await fetcher.size!(signal), 10);
    await assert.rejects(fetcher(8, 5, signal), RangeError);
    assert.deepEqual(events.map(({ kind, outcome, bytes, ref, digest }) => ({ kind, outcome, bytes, ref, digest })), [
      { kind: 'range', outcome: 'ok', bytes: 3, ref: 'r/x:1', digest: 'sha256:abc' },
      { kind: 'tail', outcome: 'ok', bytes: 4, ref: 'r/x:1', digest: 'sha256:abc' },
      { kind: 'size', outcome: 'ok', bytes: 0, ref: 'r/x:1', digest: 'sha256:abc' },
      { kind: 'range', outcome: 'error', bytes: 0, ref: 'r/x:1', digest: 'sha256:abc' },
    ]);
    assert.ok(events.every((event) => event.seconds >= 0));
    assert.ok(events[3]!.error instanceof RangeError);
  });

  it('a request cut by the layer closing is cancelled; one cut by its deadline is an error', async () => {
    const events: FetchEvent[] = [];
    const hanging = Object.assign((_offset: number, _length: number, signal: AbortSignal) => new Promise<Uint8Array>((_, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    }));
    const fetcher = observedFetcher(hanging, 'r/x:1', 'sha256:abc', (event) => events.push(event));
    const closing = new AbortController();
    const closed = fetcher(0, 1, closing.signal);
    closing.abort(new LayerUnavailableError('layer closed', { ref: 'r/x:1', digest: 'sha256:abc' }));
    await assert.rejects(closed);
    const deadline = new AbortController();
    const late = fetcher(0, 1, deadline.signal);
    deadline.abort(new Error('deadline of 10 ms passed'));
    await assert.rejects(late);
    assert.deepEqual(events.map((event) => event.outcome), ['cancelled', 'error']);
    assert.ok(!(events[1]!.error instanceof LayerFetchError));
  });
});
