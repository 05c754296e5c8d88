/**
 * Where the daemon's log lines go: a file descriptor (stderr), written off
 * the event loop, never waited for without a deadline.
 *
 * pino's own destination retries a failed write(2) every 100 ms whatever the
 * error, so once the reader of stderr had gone (EPIPE) a daemon could never
 * finish shutting down. Logging must never stop the daemon, so here:
 * - a write error other than EAGAIN ends logging for good: the reader is
 *   gone or the destination is broken, and there is no one left to tell;
 *   the error is kept in `failure`;
 * - a slow reader costs at most maxQueuedBytes of memory; lines past that
 *   are dropped and counted, and the count is logged once the queue drains;
 * - one write is in flight at a time, on libuv's thread pool, so even a
 *   reader that never reads blocks a pool thread, not the event loop.
 */
import { write } from 'node:fs';
import { levelName, textLine } from './log-format.js';

const EAGAIN_RETRY_MS = 50;

export class LogSink {
  private queue: string[] = [];
  private queuedBytes = 0;
  private writing = false;
  private dropped = 0;
  private failed: NodeJS.ErrnoException | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly fd: number,
    private readonly maxQueuedBytes = 8 * 1024 * 1024,
    /** text: each JSON line is rewritten for a person (see log-format.ts) before it is queued. */
    private readonly format: 'json' | 'text' = 'json',
  ) {}

  /** The write error that ended logging, if any. */
  get failure(): NodeJS.ErrnoException | undefined {
    return this.failed;
  }

  /** pino's destination interface: one serialized line. */
  write(json: string): void {
    if (this.failed) return;
    const line = this.format === 'text' ? textLine(json) : json;
    const bytes = Buffer.byteLength(line);
    if (this.queuedBytes + bytes > this.maxQueuedBytes) {
      this.dropped++;
      return;
    }
    this.queue.push(line);
    this.queuedBytes += bytes;
    this.pump();
  }

  /** Resolves once everything queued is written (or logging has failed), or after timeoutMs. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.idle) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private get idle(): boolean {
    return this.failed !== undefined || (!this.writing && this.queue.length === 0 && this.dropped === 0);
  }

  private pump(): void {
    if (this.writing || this.failed) return;
    if (this.queue.length === 0 && this.dropped === 0) {
      this.notifyIdle();
      return;
    }
    let text = this.queue.join('');
    if (this.dropped > 0) {
      const notice = `${JSON.stringify({ level: levelName('warn'), time: Date.now(), msg: `${this.dropped} log lines were dropped: the log reader did not keep up` })}\n`;
      text += this.format === 'text' ? textLine(notice) : notice;
      this.dropped = 0;
    }
    this.queue = [];
    this.queuedBytes = 0;
    this.writing = true;
    this.writeAll(Buffer.from(text, 'utf8'));
  }

  private writeAll(buffer: Buffer): void {
    write(this.fd, buffer, 0, buffer.length, null, (err, written) => {
      if (err?.code === 'EAGAIN') {
        setTimeout(() => this.writeAll(buffer), EAGAIN_RETRY_MS).unref();
        return;
      }
      if (err) {
        this.fail(err);
        return;
      }
      if (written < buffer.length) {
        this.writeAll(buffer.subarray(written));
        return;
      }
      this.writing = false;
      this.pump();
    });
  }

  private fail(err: NodeJS.ErrnoException): void {
    this.failed = err;
    this.writing = false;
    this.queue = [];
    this.queuedBytes = 0;
    this.notifyIdle();
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
