import { createHash, type Hash } from 'node:crypto';

/** Algorithms an OCI digest in a TOC may use (go-digest's registered set). */
const ALGORITHMS: Readonly<Record<string, { hash: string; hexLength: number }>> = {
  sha256: { hash: 'sha256', hexLength: 64 },
  sha384: { hash: 'sha384', hexLength: 96 },
  sha512: { hash: 'sha512', hexLength: 128 },
};

export interface ParsedDigest {
  algorithm: string;
  hex: string;
}

/** Returns undefined for anything that is not a well-formed `alg:hex` digest of a known algorithm. */
export function parseDigest(value: string): ParsedDigest | undefined {
  const colon = value.indexOf(':');
  if (colon <= 0) return undefined;
  const algorithm = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  const spec = Object.hasOwn(ALGORITHMS, algorithm) ? ALGORITHMS[algorithm] : undefined;
  if (spec === undefined || hex.length !== spec.hexLength || !/^[0-9a-f]+$/.test(hex)) return undefined;
  return { algorithm, hex };
}

/** The hex length of a known algorithm's digest, from the `alg:` prefix; 0 when the prefix is not one. */
function hexLengthOfPrefix(value: string, colon: number): number {
  // Every known algorithm's name has six letters: anything else needs no lookup.
  if (colon !== 6) return 0;
  const algorithm = value.slice(0, colon);
  return Object.hasOwn(ALGORITHMS, algorithm) ? ALGORITHMS[algorithm]!.hexLength : 0;
}

/** A lowercase hex digit's value (the only spelling a digest may use), else -1. */
export function hexDigitValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/**
 * The same answer as parseDigest, without its allocations: a big TOC checks
 * two digests per file, and the slices and regular expression were a tenth
 * of its parse.
 */
export function isDigest(value: string): boolean {
  const colon = value.indexOf(':');
  const hexLength = hexLengthOfPrefix(value, colon);
  if (hexLength === 0 || value.length - colon - 1 !== hexLength) return false;
  for (let i = colon + 1; i < value.length; i++) if (hexDigitValue(value.charCodeAt(i)) < 0) return false;
  return true;
}

/** A hasher for the algorithm of `like` (sha256 when omitted), to verify against that digest. */
export function digester(like?: string): { hash: Hash; algorithm: string } {
  const algorithm = like === undefined ? 'sha256' : (parseDigest(like)?.algorithm ?? 'sha256');
  return { hash: createHash(ALGORITHMS[algorithm]!.hash), algorithm };
}

export function digestOf(data: Uint8Array, algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(ALGORITHMS[algorithm]?.hash ?? 'sha256').update(data).digest('hex')}`;
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
