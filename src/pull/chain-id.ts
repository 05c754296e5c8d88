import { createHash } from 'node:crypto';

/**
 * The chain IDs of a layer stack (OCI image spec): the first is the first
 * diffID; each next one is sha256 of "<previous chainID> <diffID>". A
 * snapshot named by a chainID holds exactly that stack.
 */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const previous = out[out.length - 1];
    out.push(previous === undefined ? diffId : `sha256:${createHash('sha256').update(`${previous} ${diffId}`).digest('hex')}`);
  }
  return out;
}
