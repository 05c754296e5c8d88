/**
 * The last registry failures, kept in a small ring so `lazysnap status` can
 * answer "is the registry failing right now?" without anyone grepping logs.
 * Bounded by count and by age: a burst of failures costs at most `capacity`
 * entries, and old ones fall out of the window.
 */
export interface RecentError {
  /** ISO 8601 time of the failure. */
  time: string;
  ref: string;
  digest: string;
  /** What was being asked for (range, tail, size). */
  kind: string;
  message: string;
}

export class RecentErrors {
  private readonly entries: Array<RecentError & { at: number }> = [];
  private total = 0;

  constructor(
    readonly capacity = 64,
    readonly windowMs = 10 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  record(error: Omit<RecentError, 'time'>): void {
    const at = this.now();
    this.entries.push({ ...error, at, time: new Date(at).toISOString() });
    if (this.entries.length > this.capacity) this.entries.shift();
    this.total++;
  }

  /** Failures inside the window, oldest first, and how many the window holds in all (more than listed once the ring overflowed). */
  recent(): { errors: RecentError[]; inWindow: number } {
    const since = this.now() - this.windowMs;
    while (this.entries.length > 0 && this.entries[0]!.at < since) this.entries.shift();
    return { errors: this.entries.map(({ at: _at, ...error }) => error), inWindow: this.entries.length };
  }

  /** Failures recorded since the daemon started. */
  get count(): number {
    return this.total;
  }
}

/** What `lazysnap status` shows of the recent failures. */
export interface RegistryErrorsReport {
  windowSeconds: number;
  /** Failures inside the window (the list may hold fewer: it is a bounded ring). */
  inWindow: number;
  /** Since the process that made the requests started. */
  total: number;
  recent: RecentError[];
}

export function registryErrorsReport(errors: RecentErrors): RegistryErrorsReport {
  const recent = errors.recent();
  return { windowSeconds: Math.round(errors.windowMs / 1000), inWindow: recent.inWindow, total: errors.count, recent: recent.errors };
}
