/**
 * A cap on the bytes per second background work may request, shared by all
 * layers of a daemon, so that filling the caches never saturates the node's
 * link (other pulls, the containers' own traffic). Each request books its
 * bytes on a virtual clock and waits until its slot: simple, fair in arrival
 * order, and with no timer running while nothing asks.
 */
export class BandwidthLimiter {
  private nextFree: number;

  /** @param bytesPerSecond the cap; 0 means no cap. */
  constructor(
    readonly bytesPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) throw new RangeError(`bytesPerSecond must be a non-negative number, got ${bytesPerSecond}`);
    this.nextFree = now();
  }

  /** Waits until `bytes` more may be requested without exceeding the cap (or `signal` aborts). */
  async take(bytes: number, signal: AbortSignal): Promise<void> {
    if (this.bytesPerSecond === 0 || bytes <= 0) return;
    const now = this.now();
    const start = Math.max(now, this.nextFree);
    this.nextFree = start + (bytes / this.bytesPerSecond) * 1000;
    const wait = start - now;
    if (wait <= 0 || signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, Math.ceil(wait));
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
