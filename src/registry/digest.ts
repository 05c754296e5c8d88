// Content digests (`algorithm:hex`). Only the algorithms the OCI image spec
// registers are accepted, because a digest we cannot recompute is a digest we
// cannot verify, and unverified bytes must never reach a layer cache.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DigestMismatchError, InvalidContentError, ShortReadError, type RegistryErrorInit } from './errors.js';

const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };
const DIGEST_RE = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

export interface ParsedDigest {
  algorithm: 'sha256' | 'sha512';
  hex: string;
}

/** Null when the string is not a digest we can verify. */
export function parseDigest(digest: string): ParsedDigest | null {
  const m = DIGEST_RE.exec(digest);
  if (!m) return null;
  const algorithm = m[1]!;
  const hex = m[2]!;
  const want = HEX_LENGTH[algorithm];
  if (want === undefined || hex.length !== want || !/^[a-f0-9]+$/.test(hex)) return null;
  return { algorithm: algorithm as ParsedDigest['algorithm'], hex };
}

export function isDigest(digest: string): boolean {
  return parseDigest(digest) !== null;
}

export function assertDigest(digest: string, init: RegistryErrorInit = {}): ParsedDigest {
  const parsed = parseDigest(digest);
  if (!parsed) throw new InvalidContentError(`invalid or unsupported digest ${JSON.stringify(digest)}`, init);
  return parsed;
}

export function digestOf(data: Uint8Array, algorithm: ParsedDigest['algorithm'] = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

export function verifyDigest(data: Uint8Array, expected: string, what: string, init: RegistryErrorInit = {}): void {
  const { algorithm } = assertDigest(expected, init);
  const actual = digestOf(data, algorithm);
  if (actual !== expected) throw new DigestMismatchError(`${what} digest mismatch`, expected, actual, init);
}

/**
 * A pass-through stream that hashes what flows through it and fails at the
 * end if the digest or the length is wrong, so a streaming consumer sees an
 * error instead of silently accepting a truncated or corrupt blob.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash;
  private readonly expected: string;
  private readonly expectedSize: number | undefined;
  private readonly init: RegistryErrorInit;
  private seen = 0;

  constructor(expected: string, expectedSize: number | undefined, init: RegistryErrorInit = {}) {
    super();
    const { algorithm } = assertDigest(expected, init);
    this.hash = createHash(algorithm);
    this.expected = expected;
    this.expectedSize = expectedSize;
    this.init = init;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.expectedSize !== undefined && this.seen > this.expectedSize) {
      cb(new InvalidContentError(`blob is longer than its announced ${this.expectedSize} bytes`, this.init));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.expectedSize !== undefined && this.seen !== this.expectedSize) {
      cb(new ShortReadError(`blob ended after ${this.seen} of ${this.expectedSize} bytes`, this.init));
      return;
    }
    const actual = `${this.expected.slice(0, this.expected.indexOf(':'))}:${this.hash.digest('hex')}`;
    if (actual !== this.expected) {
      cb(new DigestMismatchError('blob digest mismatch', this.expected, actual, this.init));
      return;
    }
    cb();
  }
}
