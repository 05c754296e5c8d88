/**
 * containerd's content store, over its gRPC API. Writes go through
 * containerd's ref-locked writers: when another client (another pull of the
 * same image) holds the ref, we wait for its result instead of retrying in
 * a loop, and content that already exists is not written again.
 */
import { status } from '@grpc/grpc-js';
import { isGrpcCode, type ContainerdConnection } from './connection.js';
import type { Descriptor } from './types.js';

const SERVICE = 'containerd.services.content.v1.Content';
const WRITE_CHUNK = 1024 * 1024;

enum WriteAction {
  Stat = 0,
  Write = 1,
  Commit = 2,
}

interface WriteResponse {
  action: number;
  offset: number;
  total: number;
  digest: string;
}

export interface ContentInfo {
  digest: string;
  size: number;
  labels: Record<string, string>;
}

export class ContentWriteError extends Error {
  constructor(
    message: string,
    readonly digest: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ContentWriteError';
  }
}

export interface WriteOptions {
  labels?: Record<string, string>;
  /** Bytes written so far, for progress bars. */
  onProgress?: (written: number, total: number) => void;
  /** How long to wait for another writer that holds the same ref. */
  lockWaitMs?: number;
}

export class ContentStore {
  constructor(private readonly conn: ContainerdConnection) {}

  async info(digest: string): Promise<ContentInfo | undefined> {
    try {
      const res = await this.conn.unary<{ info: ContentInfo }>(SERVICE, 'info', { digest });
      return res.info;
    } catch (err) {
      if (isGrpcCode(err, status.NOT_FOUND)) return undefined;
      throw err;
    }
  }

  async readAll(digest: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of this.conn.serverStream<{ data: Buffer }>(SERVICE, 'read', { digest, offset: 0, size: 0 })) {
      parts.push(chunk.data);
    }
    return Buffer.concat(parts);
  }

  async updateLabels(digest: string, labels: Record<string, string>): Promise<void> {
    await this.conn.unary(SERVICE, 'update', {
      info: { digest, labels },
      updateMask: { paths: Object.keys(labels).map((k) => `labels.${k}`) },
    });
  }

  /**
   * Writes content under ref unless it already exists. open(offset) yields
   * the bytes from offset on (a resumed write starts past what containerd
   * already has). Returns true when this call wrote it.
   */
  async write(ref: string, desc: Descriptor, open: (offset: number) => AsyncIterable<Buffer>, options: WriteOptions = {}): Promise<boolean> {
    const deadline = Date.now() + (options.lockWaitMs ?? 10 * 60_000);
    for (;;) {
      if (await this.info(desc.digest)) return false;
      try {
        await this.writeOnce(ref, desc, open, options);
        return true;
      } catch (err) {
        if (isGrpcCode(err, status.ALREADY_EXISTS)) return false;
        if (!isGrpcCode(err, status.UNAVAILABLE) || Date.now() > deadline) throw err;
        // Another writer holds the ref: wait until it finishes or gives up.
        await this.waitForWriter(ref, desc.digest, deadline);
      }
    }
  }

  /**
   * Polls for the other writer's outcome. The interval stays short: most
   * contended writes are small (configs, manifests) and finish in
   * milliseconds, and a Status call is cheap for a long layer download too.
   */
  private async waitForWriter(ref: string, digest: string, deadline: number): Promise<void> {
    let delay = 10;
    while (Date.now() < deadline) {
      if (await this.info(digest)) return;
      try {
        await this.conn.unary(SERVICE, 'status', { ref });
      } catch (err) {
        if (isGrpcCode(err, status.NOT_FOUND)) return;
        throw err;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 250);
    }
    throw new ContentWriteError(`timed out waiting for another writer of ${ref}`, digest);
  }

  private async writeOnce(ref: string, desc: Descriptor, open: (offset: number) => AsyncIterable<Buffer>, options: WriteOptions): Promise<void> {
    const stream = this.conn.duplexStream<Record<string, unknown>, WriteResponse>(SERVICE, 'write');
    const responses = stream[Symbol.asyncIterator]();
    const exchange = async (request: Record<string, unknown>): Promise<WriteResponse> => {
      stream.write(request);
      const next = await responses.next();
      if (next.done) throw new ContentWriteError(`content write of ${ref} ended early`, desc.digest);
      return next.value;
    };
    try {
      const stat = await exchange({ action: WriteAction.Stat, ref, total: desc.size, expected: desc.digest });
      let offset = Number(stat.offset);
      for await (const data of open(offset)) {
        for (let i = 0; i < data.length; i += WRITE_CHUNK) {
          const piece = data.subarray(i, i + WRITE_CHUNK);
          const res = await exchange({ action: WriteAction.Write, ref, offset, data: piece });
          offset = Number(res.offset);
          options.onProgress?.(offset, desc.size);
        }
      }
      // The offset must be repeated: containerd truncates a writer to a zero offset.
      await exchange({ action: WriteAction.Commit, ref, offset, total: desc.size, expected: desc.digest, labels: options.labels ?? {} });
      stream.end();
    } catch (err) {
      stream.cancel();
      throw err;
    }
  }
}
