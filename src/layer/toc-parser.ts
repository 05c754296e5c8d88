/**
 * Who turns TOC JSON into a TocIndex. Parsing a big TOC is the one long
 * stretch of pure CPU in opening a layer (a 13,000-entry TOC is 4 MB of
 * JSON and 60-130 ms of work): on the daemon's event loop it holds up every
 * gRPC call and every FUSE answer meanwhile, and it keeps the second core
 * idle while an image's layers open. The daemon therefore parses on a
 * worker thread (ThreadTocParser); tests and one-shot tools parse inline.
 */
import { parseTocIndex, type TocIndex, type TocLimits } from '../estargz/index.js';

export interface TocParseRequest {
  /**
   * The TOC JSON. A parser may move its whole backing store to another
   * thread and back: keep no other view of it, and use the json the result
   * gives back.
   */
  json: Buffer;
  tocOffset: number;
  /** The digest the manifest promises; checked before anything in the JSON is trusted. */
  expectedTocDigest: string | undefined;
  limits: TocLimits;
  requireChunkDigests: boolean;
}

export interface ParsedToc {
  index: TocIndex;
  /** The request's JSON bytes (the same bytes, possibly in a new Buffer). */
  json: Buffer;
  /** Time spent parsing on the worker thread, when it was parsed there (the rest of the wait was queueing and hand-over). */
  workerMs?: number;
}

export interface TocParser {
  /** Rejects with the estargz module's InvalidTocError (or a subclass) when the TOC is unusable. */
  parse(request: TocParseRequest): Promise<ParsedToc>;
  close(): Promise<void>;
  /**
   * Real work has come: a parser that warms itself up in the background
   * stops now rather than take CPU from it (the real parses warm it up
   * from here on).
   */
  stopWarmUp?(): void;
}

/** Parses on the calling thread. */
export const inlineTocParser: TocParser = Object.freeze({
  parse: async (request: TocParseRequest): Promise<ParsedToc> => ({
    index: parseTocIndex(request.json, {
      tocOffset: request.tocOffset,
      expectedTocDigest: request.expectedTocDigest,
      limits: request.limits,
      requireChunkDigests: request.requireChunkDigests,
    }),
    json: request.json,
  }),
  close: async (): Promise<void> => {},
});
