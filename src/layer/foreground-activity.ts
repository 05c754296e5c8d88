/**
 * Foreground work across every layer of a daemon: the reads a container is
 * waiting for, and prefetch (which exists to serve those reads). Background
 * fetch waits until there has been none for an idle period: on a small node,
 * downloading, inflating and hashing whole layers while a container starts
 * takes the CPU and bandwidth that container needs, and the start is what
 * lazy pulling is for. One instance is shared by all layers, because a read
 * from one layer competes with background work on any other.
 */
export class ForegroundActivity {
  private active = 0;
  private lastActivity: number;
  private wakers = new Set<() => void>();

  /** @param idleMs how long without foreground work before background work may run (0: as soon as none is in flight). */
  constructor(
    readonly idleMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!Number.isFinite(idleMs) || idleMs < 0) throw new RangeError(`idleMs must be a non-negative number, got ${idleMs}`);
    this.lastActivity = now();
  }

  /** Marks foreground work as started; call the returned function (once) when it ends. */
  begin(): () => void {
    this.active++;
    this.lastActivity = this.now();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.active--;
      this.touch();
    };
  }

  /** Something that will soon cause foreground work happened (a layer was mounted): restart the idle period. */
  touch(): void {
    this.lastActivity = this.now();
    this.wake();
  }

  get inFlight(): number {
    return this.active;
  }

  /**
   * Resolves once no foreground work is in flight and none has been for the
   * idle period, or when `signal` aborts. Waiting is re-checked after every
   * change, so a read that arrives during the wait restarts it.
   */
  async waitForIdle(signal: AbortSignal): Promise<void> {
    for (;;) {
      if (signal.aborted) return;
      const quietFor = this.now() - this.lastActivity;
      if (this.active === 0 && quietFor >= this.idleMs) return;
      await this.sleepUntilChange(this.active === 0 ? this.idleMs - quietFor : undefined, signal);
    }
  }

  private sleepUntilChange(ms: number | undefined, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = ms === undefined ? undefined : setTimeout(done, Math.max(1, Math.ceil(ms)));
      this.wakers.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private wake(): void {
    for (const wake of [...this.wakers]) wake();
  }
}
