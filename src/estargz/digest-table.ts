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
  private bytes = Buffer.alloc(64 * 1024);
  private used = 0;
  /** Builder-time only: one copy per distinct digest (files of equal content share chunk digests). */
  private known: Map<string, number> | undefined = new Map();

  /** Stores a validated digest and returns its reference. */
  add(digest: string): number {
    const known = this.known!.get(digest);
    if (known !== undefined) return known;
    const colon = digest.indexOf(':');
    const algorithm = ALGORITHMS.indexOf(digest.slice(0, colon) as (typeof ALGORITHMS)[number]);
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
    if (this.bytes.write(digest.slice(colon + 1), ref + 1, 'hex') !== BYTES[algorithm]) throw new RangeError(`not a storable digest: ${JSON.stringify(digest)}`);
    this.used += need;
    this.known!.set(digest, ref);
    return ref;
  }

  get(ref: number): string {
    const algorithm = this.bytes[ref]!;
    return `${ALGORITHMS[algorithm]!}:${this.bytes.toString('hex', ref + 1, ref + 1 + BYTES[algorithm]!)}`;
  }

  /** Ends building: trims the buffer and drops the de-duplication map. */
  seal(): void {
    this.bytes = Buffer.from(this.bytes.subarray(0, this.used));
    this.known = undefined;
  }

  get byteLength(): number {
    return this.bytes.length;
  }

  /** The sealed table's bytes, to hand the table to another thread. */
  get sealedBytes(): Uint8Array {
    if (this.known !== undefined) throw new Error('digest table is still being built');
    return this.bytes;
  }

  /** A sealed table over bytes from sealedBytes (copied across threads, so no longer a Buffer). */
  static fromSealed(bytes: Uint8Array): DigestTable {
    const table = new DigestTable();
    table.bytes = Buffer.from(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength);
    table.used = bytes.byteLength;
    table.known = undefined;
    return table;
  }
}
