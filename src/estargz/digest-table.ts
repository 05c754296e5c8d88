/**
 * TOC digests kept as raw bytes in one buffer instead of one 71-character
 * string per chunk: `sha256:` + 64 hex digits is 90-odd bytes of heap as a
 * string and 33 bytes here. Digests were validated (known algorithm,
 * lowercase hex) before they get here, so decoding gives back the very same
 * string.
 */
const ALGORITHMS = ['sha256', 'sha384', 'sha512'] as const;
const BYTES: readonly number[] = [32, 48, 64];

export class DigestTable {
  // Small at first so that the start-up warm-up (toc-warm-up.ts) also runs the growth below: a path first
  // taken inside a big TOC's parse threw its optimised code away there (V8 deopt), and the parse ran
  // unoptimised until V8 had compiled it again.
  private bytes = Buffer.alloc(16 * 1024);
  private used = 0;
  private sealed = false;

  /**
   * Stores a digest validated by isDigest and returns its reference. The
   * digest must be lowercase, as isDigest requires: get() writes lowercase,
   * so only that spelling round-trips (uppercase digits would be stored as if
   * lowercase). Equal digests are not shared: a map from 71-character keys
   * cost more time (a tenth of a big TOC's parse) and more transient memory
   * than the copies it saved.
   */
  add(digest: string): number {
    if (this.sealed) throw new Error('digest table is sealed');
    const colon = digest.indexOf(':');
    const algorithm = colon === 6 ? ALGORITHMS.findIndex((name) => digest.startsWith(name)) : -1;
    // Callers validated the digest; this only guards the layout (the hex must fill its slot exactly).
    if (algorithm < 0 || digest.length - colon - 1 !== 2 * BYTES[algorithm]!) throw new RangeError(`not a storable digest: ${JSON.stringify(digest)}`);
    const need = 1 + BYTES[algorithm]!;
    if (this.used + need > this.bytes.length) {
      const bigger = Buffer.alloc(Math.max(this.bytes.length * 2, this.used + need));
      this.bytes.copy(bigger, 0, 0, this.used);
      this.bytes = bigger;
    }
    const ref = this.used;
    this.bytes[ref] = algorithm;
    // Decoded in C++: a loop over the digits in JS took 15 ms cold (6.5 warm) for the 11,763 digests
    // of a 13,031-entry TOC, this 6-10 ms cold (3 warm). A digit that is not hex stops the write short.
    if (this.bytes.write(digest.slice(colon + 1), ref + 1, need - 1, 'hex') !== need - 1) {
      throw new RangeError(`not a storable digest: ${JSON.stringify(digest)}`);
    }
    this.used += need;
    return ref;
  }

  get(ref: number): string {
    const algorithm = this.bytes[ref]!;
    return `${ALGORITHMS[algorithm]!}:${this.bytes.toString('hex', ref + 1, ref + 1 + BYTES[algorithm]!)}`;
  }

  /** Ends building: trims the buffer. */
  seal(): void {
    this.bytes = Buffer.from(this.bytes.subarray(0, this.used));
    this.sealed = true;
  }

  get byteLength(): number {
    return this.bytes.length;
  }

  /** The sealed table's bytes, to hand the table to another thread. */
  get sealedBytes(): Uint8Array {
    if (!this.sealed) throw new Error('digest table is still being built');
    return this.bytes;
  }

  /** A sealed table over bytes from sealedBytes (copied across threads, so no longer a Buffer). */
  static fromSealed(bytes: Uint8Array): DigestTable {
    const table = new DigestTable();
    table.bytes = Buffer.from(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength);
    table.used = bytes.byteLength;
    table.sealed = true;
    return table;
  }
}
