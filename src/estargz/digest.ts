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

/** A known algorithm's digest, lowercase hex of its exact length: what parseDigest accepts, built from ALGORITHMS. */
const WELL_FORMED_DIGEST = new RegExp(`^(?:${Object.entries(ALGORITHMS).map(([name, { hexLength }]) => `${name}:[0-9a-f]{${hexLength}}`).join('|')})$`);

/**
 * The same answer as parseDigest, without its allocations: a big TOC checks
 * two digests per file, and the slices were a tenth of its parse. One
 * compiled pattern beats a loop over the hex digits (23,512 digests of a
 * 13,031-entry TOC: 6 ms against 9-11).
 */
export function isDigest(value: string): boolean {
  return WELL_FORMED_DIGEST.test(value);
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
