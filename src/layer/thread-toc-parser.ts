/**
 * Parses TOCs on a worker thread, one at a time, so the event loop that
 * answers containerd and FUSE does not wait on a parse and the parse runs on
 * the second core (all but huge TOCs: see INLINE_FROM_JSON_BYTES). The worker is started (and warms up) at construction and
 * restarted after it dies.
 *
 * Its heap is not capped with resourceLimits: a worker that reaches such a
 * cap inside JSON.parse takes the whole process down with it (V8's fatal
 * out-of-memory, seen on Node 20). What keeps a huge TOC from exhausting
 * memory is the TOC memory budget, checked before the JSON is handed over.
 */
import { Worker } from 'node:worker_threads';
import { InvalidTocError, TocDigestMismatchError, fromTransferable } from '../estargz/index.js';
import { LayerError } from './errors.js';
import type { Logger } from './logger.js';
import type { ParseFailure, ParseMessage, ParseReply, ParseWorkerData, StopWarmUpMessage } from './toc-parse-protocol.js';
import { inlineTocParser, type ParsedToc, type TocParseRequest, type TocParser } from './toc-parser.js';

export interface ThreadTocParserOptions {
  logger: Logger;
  /**
   * TOCs of this many JSON bytes or more are parsed on the calling thread
   * (default INLINE_FROM_JSON_BYTES). The FUSE manager passes Infinity: its
   * event loop answers FUSE requests and must never hold still for seconds,
   * so it pays the higher peak memory instead.
   */
  inlineFromJsonBytes?: number | undefined;
  /**
   * TOCs of fewer JSON bytes than this are parsed on the calling thread
   * (default 0: none). A small TOC parses in a few ms; sent to the worker it
   * would wait there behind a big one that a later layer needs. The daemon
   * and the FUSE manager pass SMALL_TOC_JSON_BYTES.
   */
  inlineBelowJsonBytes?: number | undefined;
  /** Rounds of the worker's warm-up on a synthetic TOC (default: toc-warm-up.ts's); 0 skips it. */
  warmUpRounds?: number | undefined;
}

/** About 800 entries: parsed inline in 2-5 ms once warm. */
export const SMALL_TOC_JSON_BYTES = 256 * 1024;

interface Pending {
  resolve: (parsed: ParsedToc) => void;
  reject: (err: Error) => void;
  jsonBytes: number;
}

/** JSON from this size on moves to the worker instead of being copied. */
const MOVE_JSON_BYTES = 1024 * 1024;
/**
 * After a TOC this big, the worker is retired: V8 keeps the heap a big parse
 * grew to, and a new worker is cheap next to such a parse.
 */
const RETIRE_AFTER_JSON_BYTES = 8 * 1024 * 1024;
/**
 * TOCs from this size on (some 130,000 entries) are parsed on the calling
 * thread. On a worker, a parse that big costs a second heap and malloc
 * arena on top of the first: measured, the daemon's peak RSS for two
 * 200,000-entry TOCs grew by up to 560 MiB instead of 340-410 MiB, past
 * what the TOC memory budget promises. Such a parse holds the event loop
 * for seconds, as it always did; images with TOCs that size are rare.
 */
export const INLINE_FROM_JSON_BYTES = 16 * 1024 * 1024;

const WORKER_URL = new URL('./toc-parse-worker.js', import.meta.url);

function failureError(failure: ParseFailure): Error {
  switch (failure.kind) {
    case 'digest-mismatch':
      return new TocDigestMismatchError(failure.expected, failure.actual);
    case 'invalid-toc':
      return new InvalidTocError(failure.reason, failure.detail, failure.entryName);
    case 'error':
      return new LayerError(`TOC parse failed: ${failure.message}`);
  }
}

export class ThreadTocParser implements TocParser {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** Set by stopWarmUp(): a worker started later does not warm up either. */
  private warmUpStopped = false;
  /** Set while a retired worker is being terminated. */
  private retiring: Promise<void> | undefined;

  constructor(private readonly options: ThreadTocParserOptions) {
    this.worker = this.start();
  }

  async parse(request: TocParseRequest): Promise<ParsedToc> {
    if (this.closed) throw new LayerError('TOC parser closed');
    if (request.json.byteLength >= (this.options.inlineFromJsonBytes ?? INLINE_FROM_JSON_BYTES)) return inlineTocParser.parse(request);
    if (request.json.byteLength < (this.options.inlineBelowJsonBytes ?? 0)) return inlineTocParser.parse(request);
    // A retired worker's heap is freed only once it has terminated: never hold two big heaps at once.
    if (this.retiring) await this.retiring;
    if (this.closed) throw new LayerError('TOC parser closed');
    const worker = (this.worker ??= this.start());
    const id = this.nextId++;
    const message: ParseMessage = {
      id,
      json: request.json,
      tocOffset: request.tocOffset,
      expectedTocDigest: request.expectedTocDigest,
      limits: request.limits,
      requireChunkDigests: request.requireChunkDigests,
    };
    const { buffer } = request.json;
    const move = request.json.byteLength >= MOVE_JSON_BYTES && buffer instanceof ArrayBuffer ? [buffer] : [];
    return new Promise<ParsedToc>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, jsonBytes: request.json.byteLength });
      worker.ref();
      worker.postMessage(message, move);
    });
  }

  stopWarmUp(): void {
    if (this.warmUpStopped) return;
    this.warmUpStopped = true;
    this.worker?.postMessage({ stopWarmUp: true } satisfies StopWarmUpMessage);
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.failAll(new LayerError('TOC parser closed'));
    if (worker) await worker.terminate();
  }

  private start(): Worker {
    const workerData: ParseWorkerData = { warmUpRounds: this.options.warmUpRounds };
    const worker = new Worker(WORKER_URL, { workerData });
    worker.on('message', (reply: ParseReply) => this.settle(reply));
    worker.on('error', (err: Error) => this.workerDied(worker, err));
    worker.on('exit', (code) => this.workerDied(worker, new LayerError(`TOC parse worker exited with code ${code}`)));
    if (this.warmUpStopped) worker.postMessage({ stopWarmUp: true } satisfies StopWarmUpMessage);
    // Idle, the worker must not keep the process alive (after the listeners: adding one refs it again); parse() refs it while a request is out.
    worker.unref();
    return worker;
  }

  private settle(reply: ParseReply): void {
    const pending = this.pending.get(reply.id);
    if (!pending) return;
    this.pending.delete(reply.id);
    if (pending.jsonBytes >= RETIRE_AFTER_JSON_BYTES) this.retire();
    else if (this.pending.size === 0) this.worker?.unref();
    if ('failure' in reply) {
      pending.reject(failureError(reply.failure));
      return;
    }
    const json = Buffer.from(reply.json.buffer as ArrayBuffer, reply.json.byteOffset, reply.json.byteLength);
    pending.resolve({ index: fromTransferable(reply.index), json, workerMs: reply.workerMs });
  }

  /** Lets the worker go once its queue is empty; the next parse starts a fresh one. */
  private retire(): void {
    const worker = this.worker;
    if (!worker || this.pending.size > 0) return;
    this.worker = undefined;
    const retiring: Promise<void> = worker.terminate().then(
      () => undefined,
      (err: unknown) => this.options.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'stopping a retired TOC parse worker failed'),
    ).finally(() => {
      if (this.retiring === retiring) this.retiring = undefined;
    });
    this.retiring = retiring;
  }

  private workerDied(worker: Worker, err: Error): void {
    if (this.worker !== worker) return; // an old worker's late exit event
    this.worker = undefined;
    if (!this.closed) {
      this.options.logger.error({ err: err.message, pending: this.pending.size }, 'TOC parse worker died; the parses it held fail and the next one starts a new worker');
    }
    this.failAll(err instanceof LayerError ? err : new LayerError(`TOC parse worker failed: ${err.message}`, { cause: err }));
    void worker.terminate();
  }

  private failAll(err: Error): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(err);
  }
}
