import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { storedTimeToNanoseconds, WallClock } from '../../../src/snapshotter/wall-clock.js';

/** A monotonic clock and a realtime clock that a test can step independently. */
function fakeClocks(startMs: number) {
  let monotonic = 5_000_000_000n;
  let realtimeOffsetNs = BigInt(startMs) * 1_000_000n - monotonic;
  return {
    monotonicNs: () => (monotonic += 137n),
    realtimeMs: () => Number((monotonic + realtimeOffsetNs) / 1_000_000n),
    stepRealtime: (ms: number) => (realtimeOffsetNs += BigInt(ms) * 1_000_000n),
    advance: (ns: bigint) => (monotonic += ns),
  };
}

describe('wall clock', () => {
  it('has sub-millisecond resolution and agrees with the realtime clock to within a microsecond', () => {
    const clocks = fakeClocks(1_700_000_000_000);
    const clock = new WallClock(clocks.realtimeMs, clocks.monotonicNs);
    const a = clock.now();
    clocks.advance(250_000n);
    const b = clock.now();
    assert.ok(b - a >= 250_000n && b - a < 260_000n, `b - a = ${b - a}`);
    const trueNs = BigInt(clocks.realtimeMs()) * 1_000_000n;
    assert.ok(b - trueNs < 1_000_000n && trueNs - b < 1_000n);
  });

  it('follows the realtime clock when it is stepped', () => {
    const clocks = fakeClocks(1_700_000_000_000);
    const clock = new WallClock(clocks.realtimeMs, clocks.monotonicNs);
    const before = clock.now();
    clocks.stepRealtime(-60_000);
    const after = clock.now();
    // Measuring the new offset waits for the next millisecond tick.
    assert.ok(before - after > 59_998_000_000n && before - after <= 60_000_000_000n, `stepped by ${before - after}`);
  });

  it('reads stored milliseconds (old records) and nanoseconds', () => {
    assert.equal(storedTimeToNanoseconds(1_700_000_000_123), 1_700_000_000_123_000_000n);
    assert.equal(storedTimeToNanoseconds(1_700_000_000_123_456_789n), 1_700_000_000_123_456_789n);
  });
});
