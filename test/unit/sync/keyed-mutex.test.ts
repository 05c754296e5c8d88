import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedMutex, SingleFlight } from '../../../src/sync/index.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('KeyedMutex', () => {
  it('serializes one key in arrival order and forgets released keys', async () => {
    const mutex = new KeyedMutex();
    const order: string[] = [];
    let inside = 0;
    await Promise.all(
      ['a', 'b', 'c', 'd'].map((name) =>
        mutex.withLock('k', async () => {
          inside++;
          assert.equal(inside, 1, 'two holders of one key at once');
          order.push(name);
          await tick(5);
          inside--;
        }),
      ),
    );
    assert.deepEqual(order, ['a', 'b', 'c', 'd']);
    assert.equal(mutex.size, 0);
  });

  it('lets different keys run in parallel', async () => {
    const mutex = new KeyedMutex();
    let concurrent = 0;
    let peak = 0;
    await Promise.all(
      ['a', 'b', 'c'].map((key) =>
        mutex.withLock(key, async () => {
          peak = Math.max(peak, ++concurrent);
          await tick(20);
          concurrent--;
        }),
      ),
    );
    assert.equal(peak, 3);
  });

  it('takes several keys without deadlock whatever the order callers name them', async () => {
    const mutex = new KeyedMutex();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => mutex.withLocks(i % 2 ? ['x', 'y'] : ['y', 'x'], async () => {
        await tick(1);
        return i;
      })),
    );
    assert.equal(results.length, 20);
    assert.equal(mutex.size, 0);
  });

  it('releases the lock when the holder throws', async () => {
    const mutex = new KeyedMutex();
    await assert.rejects(mutex.withLock('k', async () => {
      throw new Error('boom');
    }));
    assert.equal(await mutex.withLock('k', async () => 'next'), 'next');
  });
});

describe('SingleFlight', () => {
  it('runs the work once for concurrent callers and shares result and error', async () => {
    const flight = new SingleFlight<number>();
    let runs = 0;
    const results = await Promise.all(Array.from({ length: 20 }, () => flight.do('k', async () => {
      runs++;
      await tick(10);
      return 42;
    })));
    assert.equal(runs, 1);
    assert.deepEqual(new Set(results), new Set([42]));
    const failures = await Promise.allSettled([1, 2, 3].map(() => flight.do('e', async () => {
      runs++;
      await tick(5);
      throw new Error('shared');
    })));
    assert.equal(runs, 2);
    assert.ok(failures.every((f) => f.status === 'rejected'));
    assert.equal(flight.has('k'), false);
  });
});
