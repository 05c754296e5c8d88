/** Messages between ThreadTocParser and its worker (structured-clone safe). */
import type { TocErrorReason, TocLimits, TransferableTocIndex } from '../estargz/index.js';

export interface ParseMessage {
  id: number;
  json: Uint8Array;
  tocOffset: number;
  expectedTocDigest: string | undefined;
  limits: TocLimits;
  requireChunkDigests: boolean;
}

/** What the worker is started with. */
export interface ParseWorkerData {
  warmUpRounds: number | undefined;
}

/** Real work has come: the worker stops warming up (a parse request stops it too). */
export interface StopWarmUpMessage {
  stopWarmUp: true;
}

export type ParseFailure =
  | { kind: 'digest-mismatch'; expected: string; actual: string }
  | { kind: 'invalid-toc'; reason: TocErrorReason; detail: string; entryName: string | undefined }
  | { kind: 'error'; message: string };

/** Every reply hands the JSON back (it may have been moved, not copied, to the worker). */
export type ParseReply = { id: number; json: Uint8Array; /** Time the worker spent parsing, ms. */ workerMs: number } & ({ index: TransferableTocIndex } | { failure: ParseFailure });
