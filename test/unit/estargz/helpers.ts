import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import * as tarStream from 'tar-stream';
import { encodeFooter, encodeLegacyFooter, writeEstargz, type EstargzBuildResult, type EstargzWriterOptions } from '../../../src/estargz/index.js';
import { tocMemberPayload } from '../../../src/estargz/toc.js';

export type ModelType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';

/** A tar entry as the tests describe it, independent of our codec. */
export interface ModelEntry {
  name: string;
  type: ModelType;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Whole seconds. */
  mtime: number;
  content?: Buffer;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, string>;
}

/** Builds a tar with tar-stream (an implementation independent of ours). */
export async function packTar(entries: readonly ModelEntry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const collected = collect(pack);
  for (const e of entries) {
    const pax: Record<string, string> = {};
    for (const [k, v] of Object.entries(e.xattrs ?? {})) pax[`SCHILY.xattr.${k}`] = v;
    const header = {
      name: e.name, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, uname: e.uname, gname: e.gname,
      mtime: new Date(e.mtime * 1000), linkname: e.linkname, devmajor: e.devmajor, devminor: e.devminor,
      size: e.type === 'file' ? (e.content?.length ?? 0) : 0,
      ...(Object.keys(pax).length > 0 ? { pax } : {}),
    };
    await new Promise<void>((resolve, reject) => {
      pack.entry(header as tarStream.Headers, e.type === 'file' ? (e.content ?? Buffer.alloc(0)) : undefined, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  return collected;
}

export interface ParsedEntry {
  name: string;
  header: tarStream.Headers & { pax?: Record<string, string> | null };
  content: Buffer;
}

/** Parses a tar with tar-stream. */
export async function extractTar(tar: Buffer): Promise<ParsedEntry[]> {
  const extract = tarStream.extract();
  const out: ParsedEntry[] = [];
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const parts: Buffer[] = [];
      stream.on('data', (d: Buffer) => parts.push(d));
      stream.on('end', () => {
        out.push({ name: header.name, header: header as ParsedEntry['header'], content: Buffer.concat(parts) });
        next();
      });
      stream.on('error', reject);
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  extract.end(tar);
  await done;
  return out;
}

function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (d: Buffer) => parts.push(d));
    stream.on('end', () => resolve(Buffer.concat(parts)));
    stream.on('error', reject);
  });
}

export class BufferSink extends Writable {
  readonly parts: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.parts.push(chunk);
    cb();
  }
  get data(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export async function* chunksOf(data: Buffer, size = 7919): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

export async function convert(tar: Buffer, options: EstargzWriterOptions = {}): Promise<{ blob: Buffer; result: EstargzBuildResult }> {
  const sink = new BufferSink();
  const result = await writeEstargz(chunksOf(tar), sink, { compressionLevel: 1, ...options });
  return { blob: sink.data, result };
}

/** A blob whose data region is `prefix` and whose TOC is the given JSON, with a correct footer. */
export function blobWithToc(json: string | Buffer | object, options: { prefix?: Buffer; legacy?: boolean } = {}): Buffer {
  const prefix = options.prefix ?? gzipSync(Buffer.alloc(2000, 0x61));
  const bytes = Buffer.isBuffer(json) ? json : Buffer.from(typeof json === 'string' ? json : JSON.stringify(json));
  const member = gzipSync(tocMemberPayload(bytes));
  const footer = options.legacy === true ? encodeLegacyFooter(prefix.length) : encodeFooter(prefix.length);
  return Buffer.concat([prefix, member, footer]);
}

export const SHA_A = `sha256:${'a'.repeat(64)}`;
export const SHA_B = `sha256:${'b'.repeat(64)}`;
export const SHA_C = `sha256:${'c'.repeat(64)}`;

/** A small valid TOC: a directory, a 10-byte file in three chunks, a hardlink and a symlink. */
export function validToc(): { version: number; entries: Record<string, unknown>[] } {
  return {
    version: 1,
    entries: [
      { name: 'a/', type: 'dir', mode: 0o755 },
      { name: 'a/f', type: 'reg', size: 10, offset: 100, chunkSize: 4, chunkDigest: SHA_A, digest: SHA_C },
      { name: 'a/f', type: 'chunk', offset: 300, chunkOffset: 4, chunkSize: 4, chunkDigest: SHA_B },
      { name: 'a/f', type: 'chunk', offset: 500, chunkOffset: 8, chunkDigest: SHA_C },
      { name: 'a/hl', type: 'hardlink', linkName: 'a/f' },
      { name: 'a/sl', type: 'symlink', linkName: '../x' },
    ],
  };
}
