/**
 * The worker thread behind ThreadTocParser: parses TOC JSON into a compact
 * index and posts it back in transferable form. It warms its parser up
 * while idle (see toc-warm-up.ts) and serves one request at a time.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { InvalidTocError, TocDigestMismatchError, parseTocIndex, toTransferable, transferList } from '../estargz/index.js';
import { detachOneArrayBuffer } from './detach-protector.js';
import { warmUpTocParsing } from './toc-warm-up.js';
import type { ParseFailure, ParseReply, ParseMessage, ParseWorkerData, StopWarmUpMessage } from './toc-parse-protocol.js';

function describeFailure(err: unknown): ParseFailure {
  if (err instanceof TocDigestMismatchError) return { kind: 'digest-mismatch', expected: err.expected, actual: err.actual };
  if (err instanceof InvalidTocError) return { kind: 'invalid-toc', reason: err.reason, detail: err.detail, entryName: err.entryName };
  return { kind: 'error', message: err instanceof Error ? err.message : String(err) };
}

const port = parentPort;
if (port === null) throw new Error('toc-parse-worker.js runs only as a worker thread');

// Before the warm-up optimises anything: the first reply's transfer would otherwise throw its work away.
detachOneArrayBuffer();

let requests = 0;
let warmUpStopped = false;
const { warmUpRounds } = (workerData ?? {}) as Partial<ParseWorkerData>;
void warmUpTocParsing(() => requests > 0 || warmUpStopped, warmUpRounds).catch(() => {});

function parse(message: ParseMessage): { reply: ParseReply; transfer: ArrayBuffer[] } {
  const { id, json } = message;
  const started = performance.now();
  const moved = json.buffer instanceof ArrayBuffer && json.buffer.byteLength > 0 ? [json.buffer] : [];
  try {
    const index = parseTocIndex(Buffer.from(json.buffer, json.byteOffset, json.byteLength), {
      tocOffset: message.tocOffset,
      expectedTocDigest: message.expectedTocDigest,
      limits: message.limits,
      requireChunkDigests: message.requireChunkDigests,
    });
    const transferable = toTransferable(index);
    return { reply: { id, json, workerMs: performance.now() - started, index: transferable }, transfer: [...moved, ...transferList(transferable)] };
  } catch (err) {
    return { reply: { id, json, workerMs: performance.now() - started, failure: describeFailure(err) }, transfer: moved };
  }
}

port.on('message', (message: ParseMessage | StopWarmUpMessage) => {
  if ('stopWarmUp' in message) {
    warmUpStopped = true;
    return;
  }
  requests++;
  const { reply, transfer } = parse(message);
  port.postMessage(reply, transfer);
});
