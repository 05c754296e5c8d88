/**
 * Append-only typed arrays for building the compact TOC tables: a million
 * numbers cost 8 (or 4, or 1) bytes each instead of a JS array's boxed slots,
 * and finish() trims the spare capacity before the table is kept.
 */
type TypedArray = Float64Array | Uint32Array | Int32Array | Uint8Array;

export class GrowableArray<T extends TypedArray> {
  private data: T;
  private used = 0;

  constructor(private readonly make: new (length: number) => T, capacity = 1024) {
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
