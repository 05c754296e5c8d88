/**
 * Append-only typed arrays for building the compact TOC tables: a million
 * numbers cost 8 (or 4, or 1) bytes each instead of a JS array's boxed slots,
 * and finish() trims the spare capacity before the table is kept.
 */
type TypedArray = Float64Array | Uint32Array | Int32Array | Uint8Array;

export class GrowableArray<T extends TypedArray> {
  private data: T;
  private used = 0;

  /**
   * The default capacity is small on purpose: the start-up warm-ups parse
   * small TOCs (600 entries on the FUSE manager's main thread), and only
   * growth they ran has optimised code. Starting at 1024, the first real
   * TOC of 1,509 entries took the growth path for the first time and threw
   * away the optimised code of push and its callers (V8 deopt), which V8
   * then compiled again during the pull.
   */
  constructor(private readonly make: new (length: number) => T, capacity = 256) {
    this.data = new make(capacity);
  }

  get length(): number {
    return this.used;
  }

  /** Appends and returns the new element's index. */
  push(value: number): number {
    if (this.used === this.data.length) {
      const bigger = new this.make(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.used] = value;
    return this.used++;
  }

  get(i: number): number {
    return this.data[i]!;
  }

  set(i: number, value: number): void {
    this.data[i] = value;
  }

  /** A right-sized copy; the builder's spare capacity is left to the garbage collector. */
  finish(): T {
    return this.data.slice(0, this.used) as T;
  }
}
