// Fixtures for the layer tests: eStargz blobs built in memory with our writer
// from tars made by tar-stream (an independent implementation), and a fake
// fetcher over the blob that counts calls and can delay, hang or fail.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as tarStream from 'tar-stream';
import { writeEstargz, type EstargzBuildResult, type EstargzWriterOptions } from '../../../src/estargz/index.js';
import { ChunkCache, openRemoteLayer, type BlobFetcher, type Logger, type RemoteLayer, type RemoteLayerOptions } from '../../../src/layer/index.js';

export interface FileSpec {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo';
  data?: Buffer;
  linkname?: string;
  mode?: number;
  devmajor?: number;
  devminor?: number;
}

/** Deterministic bytes that gzip cannot shrink (xorshift32), so compressed offsets are spread out. */
export function noise(seed: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

export async function packTar(files: readonly FileSpec[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const parts: Buffer[] = [];
  pack.on('data', (d: Buffer) => parts.push(d));
  const ended = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const f of files) {
    const type = f.type ?? 'file';
    const header: tarStream.Headers = {
      name: f.name, type, mode: f.mode ?? (type === 'directory' ? 0o755 : 0o644), uid: 0, gid: 0, uname: 'root', gname: 'root',
      mtime: new Date(1_700_000_000_000), linkname: f.linkname, devmajor: f.devmajor, devminor: f.devminor,
      size: type === 'file' ? (f.data?.length ?? 0) : 0,
    };
    await new Promise<void>((resolve, reject) => {
      pack.entry(header, type === 'file' ? (f.data ?? Buffer.alloc(0)) : undefined, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await ended;
  return Buffer.concat(parts);
}

class Sink extends Writable {
  readonly parts: Buffer[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.parts.push(chunk);
    cb();
  }
}

export async function buildBlob(files: readonly FileSpec[], options: EstargzWriterOptions = {}): Promise<{ blob: Buffer; result: EstargzBuildResult }> {
  const tar = await packTar(files);
  const sink = new Sink();
  async function* input(): AsyncGenerator<Buffer> {
    for (let i = 0; i < tar.length; i += 65536) yield tar.subarray(i, i + 65536);
  }
  const result = await writeEstargz(input(), sink, { compressionLevel: 1, chunkSize: 64 * 1024, ...options });
  return { blob: Buffer.concat(sink.parts), result };
}

export const CHUNK = 64 * 1024;

/** The standard test tree: multi-chunk files, hardlinks, whiteouts, an opaque dir, devices. */
export function standardFiles(): FileSpec[] {
  return [
    { name: 'a/', type: 'directory' },
    { name: 'a/small.txt', data: Buffer.from('hello, lazy world\n'.repeat(5)) },
    { name: 'a/big.bin', data: noise(1, 5 * CHUNK + 1234) },
    { name: 'a/hl', type: 'link', linkname: 'a/big.bin' },
    { name: 'a/sym', type: 'symlink', linkname: 'small.txt' },
    { name: 'b/c/d/deep.txt', data: Buffer.from('deep\n') },
    { name: 'empty', data: Buffer.alloc(0) },
    { name: 'etc/', type: 'directory' },
    { name: 'etc/keep.conf', data: Buffer.from('keep=1\n') },
    { name: 'etc/.wh.gone', data: Buffer.alloc(0) },
    { name: 'opq/', type: 'directory' },
    { name: 'opq/.wh..wh..opq', data: Buffer.alloc(0) },
    { name: 'opq/new.txt', data: Buffer.from('new\n') },
    { name: 'dev/', type: 'directory' },
    { name: 'dev/null0', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'fifo', type: 'fifo' },
    // Three identical zero chunks: one cache key, one fetch.
    { name: 'zeros.bin', data: Buffer.alloc(3 * CHUNK + 100) },
    { name: 'mid.bin', data: noise(2, CHUNK + 7000) },
    { name: 'tail.bin', data: noise(3, 3 * CHUNK) },
  ];
}

export interface FetchCall {
  offset: number;
  length: number;
}

/**
 * A fetcher over an in-memory blob that records what it is asked. `mode` can be
 * changed at any time: 'hang' never answers (until aborted, if honourSignal),
 * 'fail' rejects at once. `gate`, when set, holds every call until opened.
 */
export class FakeFetcher {
  readonly calls: FetchCall[] = [];
  bytes = 0;
  inFlight = 0;
  maxInFlight = 0;
  mode: 'ok' | 'hang' | 'fail' = 'ok';
  delayMs = 0;
  honourSignal = true;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  constructor(public blob: Buffer) {}

  readonly fetch: BlobFetcher = Object.assign(
    async (offset: number, length: number, signal: AbortSignal): Promise<Buffer> => {
      this.calls.push({ offset, length });
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      try {
        if (this.gate !== undefined) await this.gate;
        if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
        if (this.mode === 'fail') throw new Error('injected fetch failure');
        if (this.mode === 'hang') {
          await new Promise<void>((_, reject) => {
            if (this.honourSignal) signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
          });
        }
        if (offset + length > this.blob.length) throw new RangeError('beyond blob');
        this.bytes += length;
        return Buffer.from(this.blob.subarray(offset, offset + length));
      } finally {
        this.inFlight--;
      }
    },
    {
      size: async () => {
        this.sizeLookups++;
        return this.blob.length;
      },
      // A suffix-range read: recorded as the window it answers, with the same gate/hang/fail behaviour.
      tail: async (length: number, signal: AbortSignal) => {
        const take = Math.min(length, this.blob.length);
        return { data: await this.fetch(this.blob.length - take, take, signal), size: this.blob.length };
      },
    },
  );
  /** HEAD-like size lookups (the tail read makes them unnecessary). */
  sizeLookups = 0;

  hold(): void {
    this.gate = new Promise((resolve) => {
      this.openGate = resolve;
    });
  }

  release(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  reset(): void {
    this.calls.length = 0;
    this.bytes = 0;
    this.sizeLookups = 0;
  }
}

export interface LogLine {
  level: string;
  obj: Record<string, unknown>;
  msg: string | undefined;
}

export function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (obj: object, msg?: string): void => {
    lines.push({ level, obj: obj as Record<string, unknown>, msg });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `lazysnap-layer-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Bytes of a file spec as a read of the layer should return them. */
export function contentOf(files: readonly FileSpec[], name: string): Buffer {
  const f = files.find((s) => s.name === name);
  if (f?.data === undefined) throw new Error(`no data for ${name}`);
  return f.data;
}

export interface TestBlob {
  files: FileSpec[];
  blob: Buffer;
  result: EstargzBuildResult;
}

export async function standardBlob(options: EstargzWriterOptions = {}): Promise<TestBlob> {
  const files = standardFiles();
  const { blob, result } = await buildBlob(files, options);
  return { files, blob, result };
}

export interface OpenedTestLayer {
  layer: RemoteLayer;
  fake: FakeFetcher;
  cache: ChunkCache;
  logger: ReturnType<typeof recordingLogger>;
}

export async function openTestLayer(
  blob: TestBlob,
  overrides: Partial<RemoteLayerOptions> & { fake?: FakeFetcher } = {},
): Promise<OpenedTestLayer> {
  const fake = overrides.fake ?? new FakeFetcher(blob.blob);
  const cache = overrides.cache ?? ChunkCache.inMemory(64 << 20);
  const logger = recordingLogger();
  const layer = await openRemoteLayer({
    ref: 'registry.test/lazysnap/fixture:1',
    digest: blob.result.compressedDigest,
    size: blob.blob.length,
    expectedTocDigest: blob.result.tocDigest,
    fetcher: fake.fetch,
    cache,
    logger,
    fetchTimeoutMs: 2000,
    ...overrides,
  });
  return { layer, fake, cache, logger };
}
