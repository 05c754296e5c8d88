import { createGunzip } from 'node:zlib';
import { digester } from './digest.js';
import { ChunkDecodeError, ChunkDigestMismatchError } from './errors.js';
import { inflateBufferSize } from './inflate-buffer.js';
import type { FileChunk } from './toc-index.js';

export { chunksForRange } from './toc-index.js';

/**
 * Checks uncompressed chunk bytes against the chunk's digest from the verified TOC.
 * A chunk without a digest (possible only when the index was built with
 * requireChunkDigests false) is accepted unchecked.
 */
export function verifyChunk(data: Uint8Array, chunk: FileChunk): void {
  if (data.length !== chunk.chunkSize) {
    throw new ChunkDecodeError(chunk.fileName, chunk.chunkOffset, `chunk holds ${data.length} bytes, expected ${chunk.chunkSize}`);
  }
  if (chunk.chunkDigest === undefined) return;
  const { hash, algorithm } = digester(chunk.chunkDigest);
  const actual = `${algorithm}:${hash.update(data).digest('hex')}`;
  if (actual !== chunk.chunkDigest) throw new ChunkDigestMismatchError(chunk.fileName, chunk.chunkOffset, chunk.chunkDigest, actual);
}

/**
 * Inflates a chunk from its compressed bytes (blob range [chunk.offset,
 * chunk.compressedEnd), or any prefix of it long enough to hold the chunk) and
 * verifies it. Inflation stops as soon as innerOffset + chunkSize bytes are out, so a
 * hostile range can cost no more memory than the TOC limits allowed for one chunk.
 */
export function inflateChunk(compressed: Uint8Array, chunk: FileChunk): Promise<Buffer> {
  const need = chunk.innerOffset + chunk.chunkSize;
  return new Promise<Buffer>((resolve, reject) => {
    const gunzip = createGunzip({ chunkSize: inflateBufferSize(need) });
    // The chunk's bytes go straight into a buffer of exactly its size: one
    // copy, and a buffer the chunk cache keeps as it is (a view into a
    // bigger one would be copied again there). Bounded by the TOC limits.
    const out = Buffer.allocUnsafeSlow(chunk.chunkSize);
    let got = 0;
    let settled = false;
    const settle = (error: Error | undefined, data?: Buffer): void => {
      if (settled) return;
      settled = true;
      gunzip.removeAllListeners('data');
      gunzip.destroy();
      if (error !== undefined) reject(error);
      else resolve(data!);
    };
    gunzip.on('data', (piece: Buffer) => {
      const start = got;
      got += piece.length;
      // Part of the piece that falls in [innerOffset, need).
      const from = Math.max(0, chunk.innerOffset - start);
      const to = Math.min(piece.length, need - start);
      if (to > from) piece.copy(out, start + from - chunk.innerOffset, from, to);
      if (got < need) return;
      try {
        verifyChunk(out, chunk);
        settle(undefined, out);
      } catch (err) {
        settle(err as Error);
      }
    });
    gunzip.on('end', () => settle(new ChunkDecodeError(chunk.fileName, chunk.chunkOffset, `gzip data ends after ${got} bytes, need ${need}`)));
    gunzip.on('error', (err: Error) => settle(new ChunkDecodeError(chunk.fileName, chunk.chunkOffset, err.message)));
    gunzip.end(compressed);
  });
}
