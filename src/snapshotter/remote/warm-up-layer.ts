/**
 * The made-up layer the start-up warm-up serves itself (see warm-up.ts): an
 * eStargz blob shaped like a real layer (directories, small files, one file
 * of several chunks, a symlink, a hardlink).
 *
 * Writing it costs the estargz writer's first run, 65 ms of CPU on an idle
 * machine and three times that while the node is starting everything else;
 * and the daemon never writes eStargz otherwise. So `npm run build` writes it
 * once (scripts/build-warm-up-layer.mjs) next to this module, and a start-up
 * only reads it. The file is checked against its own digest; one that is
 * missing or damaged is rebuilt here, as before.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import tarStream from 'tar-stream';
import { buildEstargz } from '../../estargz/index.js';
import { digestOf } from '../../registry/index.js';

export interface WarmUpLayer {
  blob: Buffer;
  /** The blob's digest (the layer digest). */
  compressedDigest: string;
  tocDigest: string;
}

/** Where `npm run build` leaves the prebuilt layer: JSON, the blob in base64. */
export const PREBUILT_WARM_UP_LAYER = fileURLToPath(new URL('./warm-up-layer.json', import.meta.url));

const CHUNK_SIZE = 64 * 1024;
const SMALL_FILES = 64;

/** Several chunks, the last one short; bytes that differ from offset to offset, so a misplaced read shows. */
export function warmUpBigFile(): Buffer {
  const big = Buffer.alloc(3 * CHUNK_SIZE + 1234);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 8)) & 0xff;
  return big;
}

/** The first bytes of usr/lib/module2.py (also reached as the hardlink usr/lib/hard). */
export const WARM_UP_SMALL_FILE_START = '# module 2\n';

function layerTar(big: Buffer): Promise<Buffer> {
  const pack = tarStream.pack();
  const parts: Buffer[] = [];
  pack.on('data', (d: Buffer) => parts.push(d));
  const ended = new Promise<Buffer>((resolve, reject) => {
    pack.on('end', () => resolve(Buffer.concat(parts)));
    pack.on('error', reject);
  });
  const mtime = new Date(1_700_000_000_000);
  const entry = (header: Omit<tarStream.Headers, 'mtime' | 'uid' | 'gid'>, data?: Buffer): void => {
    pack.entry({ uid: 0, gid: 0, mtime, mode: header.type === 'directory' ? 0o755 : 0o644, ...header }, data);
  };
  entry({ name: 'usr/', type: 'directory' });
  entry({ name: 'usr/lib/', type: 'directory' });
  for (let i = 0; i < SMALL_FILES; i++) entry({ name: `usr/lib/module${i}.py`, type: 'file' }, Buffer.from(`# module ${i}\n`.repeat(20 + i)));
  entry({ name: 'usr/lib/big.bin', type: 'file', mode: 0o755 }, big);
  entry({ name: 'usr/lib/link', type: 'symlink', linkname: 'module1.py' });
  entry({ name: 'usr/lib/hard', type: 'link', linkname: 'usr/lib/module2.py' });
  pack.finalize();
  return ended;
}

/** Writes the layer; `tmpDir` takes the writer's spool files. */
export async function buildWarmUpLayer(tmpDir: string): Promise<WarmUpLayer> {
  const tar = await layerTar(warmUpBigFile());
  const { stream, result } = buildEstargz((async function* () { yield tar; })(), { chunkSize: CHUNK_SIZE, compressionLevel: 1, tmpDir });
  const [parts, built] = await Promise.all([stream.toArray() as Promise<Buffer[]>, result]);
  return { blob: Buffer.concat(parts), compressedDigest: built.compressedDigest, tocDigest: built.tocDigest };
}

export function encodeWarmUpLayer(layer: WarmUpLayer): string {
  return `${JSON.stringify({ compressedDigest: layer.compressedDigest, tocDigest: layer.tocDigest, blob: layer.blob.toString('base64') })}\n`;
}

/** The prebuilt layer, or undefined when the file is missing or does not hold what it claims. */
export async function readPrebuiltWarmUpLayer(path = PREBUILT_WARM_UP_LAYER): Promise<WarmUpLayer | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<Record<'compressedDigest' | 'tocDigest' | 'blob', unknown>>;
    if (typeof parsed.compressedDigest !== 'string' || typeof parsed.tocDigest !== 'string' || typeof parsed.blob !== 'string') return undefined;
    const blob = Buffer.from(parsed.blob, 'base64');
    // The TOC digest is checked where every TOC's is: when the warm-up opens the layer.
    return digestOf(blob) === parsed.compressedDigest ? { blob, compressedDigest: parsed.compressedDigest, tocDigest: parsed.tocDigest } : undefined;
  } catch {
    return undefined;
  }
}

/** The prebuilt layer when there is a good one, else a freshly written one. */
export async function warmUpLayer(tmpDir: string): Promise<WarmUpLayer & { prebuilt: boolean }> {
  const prebuilt = await readPrebuiltWarmUpLayer();
  return prebuilt !== undefined ? { ...prebuilt, prebuilt: true } : { ...(await buildWarmUpLayer(tmpDir)), prebuilt: false };
}
