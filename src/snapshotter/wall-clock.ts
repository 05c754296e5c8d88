/**
 * Wall-clock time in nanoseconds since the Unix epoch. containerd's
 * snapshotters stamp created/updated times with Go's nanosecond time.Now(),
 * and its test suite checks that an Update's time lies strictly between two
 * readings taken around the call; Date.now() (milliseconds) fails that.
 *
 * Node has no nanosecond realtime clock, so the monotonic clock is offset to
 * realtime: the offset is measured at the instant Date.now() ticks to the next
 * millisecond, which pins it to well under a microsecond. When the two clocks
 * diverge by more than a millisecond (the realtime clock was stepped, or drift
 * accumulated) the offset is measured again.
 */
const NS_PER_MS = 1_000_000n;

export type Nanoseconds = bigint;

export class WallClock {
  private offset: bigint;

  constructor(
    private readonly realtimeMs: () => number = Date.now,
    private readonly monotonicNs: () => bigint = process.hrtime.bigint,
  ) {
    this.offset = this.measureOffset();
  }

  now(): Nanoseconds {
    const ns = this.monotonicNs() + this.offset;
    // Date.now() is floored: the true time lies in [ms, ms + 1).
    const ms = BigInt(this.realtimeMs());
    if (ns < (ms - 1n) * NS_PER_MS || ns >= (ms + 2n) * NS_PER_MS) {
      this.offset = this.measureOffset();
      return this.monotonicNs() + this.offset;
    }
    return ns;
  }

  /** Spins (at most about a millisecond) until Date.now() ticks, then pairs that millisecond with the monotonic reading. */
  private measureOffset(): bigint {
    const start = this.realtimeMs();
    for (;;) {
      const before = this.monotonicNs();
      const ms = this.realtimeMs();
      if (ms !== start) return BigInt(ms) * NS_PER_MS - before;
    }
  }
}

/** A stored time: nanoseconds (bigint), or milliseconds (number) in records written before nanosecond times. */
export function storedTimeToNanoseconds(stored: bigint | number): Nanoseconds {
  return typeof stored === 'bigint' ? stored : BigInt(Math.round(stored)) * NS_PER_MS;
}
