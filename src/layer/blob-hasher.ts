/**
 * Hashes a blob that arrives as numbered pieces, possibly out of order (several
 * range requests in flight), feeding the hash strictly in order. Pieces that
 * arrive early wait in memory; admit() keeps fetchers from running more than
 * `window` pieces ahead of the hash, so that memory stays bounded however slow
 * one piece is.
 */
import { createHash, type Hash } from 'node:crypto';

export class OrderedBlobHasher {
  private readonly hash: Hash;
  private next = 0;
  private readonly early = new Map<number, Buffer>();
  private waiters: Array<() => void> = [];
  private abandonReason: string | undefined;

  /** `algorithm` is a node:crypto hash name (sha256, sha512...); `window` must be at least the number of fetchers. */
  constructor(algorithm: string, readonly pieces: number, private readonly window: number) {
    if (!Number.isSafeInteger(window) || window < 1) throw new RangeError(`hash window must be a positive integer, got ${window}`);
    this.hash = createHash(algorithm);
  }

  /** Hashing goes on: no piece was given up. */
  get active(): boolean {
    return this.abandonReason === undefined;
  }

  /** Every piece has been hashed. */
  get complete(): boolean {
    return this.active && this.next === this.pieces;
  }

  get reasonAbandoned(): string | undefined {
    return this.abandonReason;
  }

  /** Resolves when piece `index` may be fetched (or hashing was abandoned, or `signal` aborted). */
  async admit(index: number, signal: AbortSignal): Promise<void> {
    while (this.active && !signal.aborted && index >= this.next + this.window) {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          signal.removeEventListener('abort', wake);
          resolve();
        };
        this.waiters.push(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
  }

  feed(index: number, data: Buffer): void {
    if (!this.active || index < this.next || this.early.has(index)) return;
    this.early.set(index, data);
    for (let piece = this.early.get(this.next); piece !== undefined; piece = this.early.get(this.next)) {
      this.hash.update(piece);
      this.early.delete(this.next);
      this.next++;
    }
    this.wake();
  }

  /** A piece cannot be had: the hash can never complete. Frees what waits and wakes fetchers. */
  abandon(reason: string): void {
    this.abandonReason ??= reason;
    this.early.clear();
    this.wake();
  }

  /** The hex digest; only once complete. */
  digestHex(): string {
    if (!this.complete) throw new Error(`blob hash is not complete (${this.next} of ${this.pieces} pieces hashed)`);
    return this.hash.digest('hex');
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
