import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecentErrors } from '../../../src/admin/index.js';

const failure = (n: number) => ({ ref: 'r/x:1', digest: `sha256:${n}`, kind: 'range', message: `boom ${n}` });

describe('recent registry errors', () => {
  it('keeps the newest ones up to its capacity, and counts all of them', () => {
    let now = 1_000_000;
    const ring = new RecentErrors(3, 60_000, () => now);
    for (let i = 1; i <= 5; i++) {
      ring.record(failure(i));
      now += 1000;
    }
    const { errors, inWindow } = ring.recent();
    assert.deepEqual(errors.map((e) => e.message), ['boom 3', 'boom 4', 'boom 5']);
    assert.equal(inWindow, 3);
    assert.equal(ring.count, 5);
    assert.equal(errors[0]!.time, new Date(1_002_000).toISOString());
  });

  it('forgets failures older than its window', () => {
    let now = 0;
    const ring = new RecentErrors(10, 60_000, () => now);
    ring.record(failure(1));
    now = 30_000;
    ring.record(failure(2));
    now = 70_000;
    assert.deepEqual(ring.recent().errors.map((e) => e.message), ['boom 2']);
    now = 100_000;
    assert.deepEqual(ring.recent(), { errors: [], inWindow: 0 });
    assert.equal(ring.count, 2);
  });
});
