/**
 * Getting a layer's verified TOC: from the TOC cache when we have seen this TOC
 * before (no network at all, so a fully cached layer opens with the registry
 * down), else from the blob with at most two range requests: one tail read big
 * enough to usually hold footer and TOC, and one more for the TOC's head when the
 * TOC starts before the tail.
 *
 * TOC cache files are `<dir>/<alg>/<hex>` (the TOC digest): one header line of
 * JSON with what the TOC digest does not cover (the TOC's offset in its blob,
 * which blob), then the TOC JSON bytes exactly as fetched. The JSON is re-hashed
 * on every load, so a damaged file is ignored (and replaced) rather than trusted.
 */
import { access, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import {
  DEFAULT_TOC_LIMITS, ESTARGZ_FOOTER_SIZE, InvalidTocError, extractTocJson, parseFooter,
  type TocIndex, type TocLimits,
} from '../estargz/index.js';
import { parseChunkDigest } from './disk-cache.js';
import { fetchWithDeadline, withDeadline, type BlobFetcher } from './fetcher.js';
import { LayerUnavailableError, TocMemoryBudgetError } from './errors.js';
import { tocParseMemory, type TocMemoryBudget, type TocMemoryReservation } from './toc-budget.js';
import type { Logger } from './logger.js';
import type { LoaderCounters } from './chunk-loader.js';
import { inlineTocParser, type TocParser } from './toc-parser.js';

/**
 * The first read of a layer. Most layers' footer and TOC fit in it (one request);
 * a bigger TOC costs one more request for its head. Every byte past the TOC is
 * waste, so it is kept small.
 */
export const DEFAULT_TAIL_SIZE = 128 * 1024;

export interface TocLoadOptions {
  ref: string;
  digest: string;
  /** Blob size, when the manifest told us; else asked of the fetcher. */
  size: number | undefined;
  expectedTocDigest: string | undefined;
  fetcher: BlobFetcher;
  tocCacheDir: string | undefined;
  timeoutMs: number;
  tailSize: number;
  limits: TocLimits;
  requireChunkDigests: boolean;
  signal: AbortSignal;
  logger: Logger;
  counters: LoaderCounters;
  /** When given, the parsed TOC must fit in it; parses take turns. */
  budget?: TocMemoryBudget | undefined;
  /** Where the JSON is parsed; inline when absent. */
  parser?: TocParser | undefined;
}

export interface LoadedToc {
  index: TocIndex;
  source: 'network' | 'toc-cache';
  /** Range requests made (0 when the TOC came from the cache). */
  rangeRequests: number;
  /** The blob's size, when the open learnt it (from the manifest or the tail read). */
  size?: number | undefined;
  /** The index's share of the TOC memory budget (sized from the JSON; the caller sets the real figure and releases it). */
  reservation: TocMemoryReservation | undefined;
  /** Where the open's time went, in ms (network opens only): for the debug log. */
  phases?: TocLoadPhases;
  /**
   * Gives back the budget's turn, which the load keeps until the caller has
   * set the reservation to what the layer keeps (TocMemoryBudget.takeTurn).
   * Call it exactly when that is done, or when the open failed.
   */
  releaseTurn: () => void;
  /** Settles once the TOC is in the TOC cache (or could not be put there, which is logged); never rejects. */
  saved: Promise<void>;
}

export interface TocLoadPhases {
  /** Footer and TOC bytes from the registry. */
  fetchMs: number;
  /** Waiting for other layers' TOC parses (they take turns). */
  turnMs: number;
  /** Decompressing and parsing the TOC, hand-over to the parser's thread included. */
  parseMs: number;
  /** Of which the parse itself on the worker thread, when it ran there. */
  workerMs?: number;
}

interface ParsedToc {
  index: TocIndex;
  reservation: TocMemoryReservation | undefined;
}

interface ParsedTocWithJson extends ParsedToc {
  /** The JSON as the parser handed it back (see TocParseRequest.json). */
  json: Buffer;
  workerMs?: number;
}

/**
 * A TOC this small (compressed) does not wait for the turn: its parse costs
 * little memory (its reservation covers it all the same), and most layers of
 * an image have TOCs like it. Queued, the bottom layer a Prepare waits for
 * sat behind other layers' big parses: 117 ms for a 293-entry TOC of the big
 * image, behind 1,509- and 630-entry ones.
 */
export const UNQUEUED_TOC_COMPRESSED_BYTES = 64 * 1024;

const NO_TURN = (): void => {};

/**
 * The budget's turn, so that only one TOC's transient memory is alive at a
 * time; held until LoadedToc.releaseTurn (or released here on failure).
 */
function takeTurn(options: TocLoadOptions): Promise<() => void> {
  return options.budget === undefined ? Promise.resolve(NO_TURN) : options.budget.takeTurn();
}

/** Runs `work` holding a turn, and hands the turn on with its result; a failed `work` gives it back. */
async function withTurn<T>(options: TocLoadOptions, work: () => Promise<T>): Promise<T & { releaseTurn: () => void }> {
  const releaseTurn = await takeTurn(options);
  try {
    return { ...(await work()), releaseTurn };
  } catch (err) {
    releaseTurn();
    throw err;
  }
}

/**
 * Reserves what the parse needs while it runs (refusing before it starts when
 * that cannot fit), then parses; the layer later shrinks the reservation to
 * what its index keeps.
 */
async function parseWithinBudget(json: Buffer, parse: { expectedTocDigest: string | undefined; tocOffset: number }, options: TocLoadOptions): Promise<ParsedTocWithJson> {
  const reservation = options.budget?.reserve(tocParseMemory(json), { ref: options.ref, digest: options.digest });
  try {
    const parser = options.parser ?? inlineTocParser;
    const parsed = await parser.parse({
      json,
      tocOffset: parse.tocOffset,
      expectedTocDigest: parse.expectedTocDigest,
      limits: options.limits,
      requireChunkDigests: options.requireChunkDigests,
    });
    return { index: parsed.index, json: parsed.json, reservation, ...(parsed.workerMs !== undefined ? { workerMs: parsed.workerMs } : {}) };
  } catch (err) {
    reservation?.release();
    throw err;
  }
}

interface CachedTocHeader {
  version: 1;
  layerDigest: string;
  tocOffset: number;
  /** The blob's size, as the registry told it (absent in files written before it was kept). */
  blobSize?: number;
}

function tocCachePath(dir: string, tocDigest: string): string | undefined {
  const parsed = parseChunkDigest(tocDigest);
  return parsed === undefined ? undefined : join(dir, parsed.algorithm, parsed.hex);
}

/** Where this layer's TOC would be cached: none without a cache or a TOC digest to trust it by. */
function cachedTocFile(options: TocLoadOptions): string | undefined {
  const { tocCacheDir, expectedTocDigest } = options;
  return tocCacheDir === undefined || expectedTocDigest === undefined ? undefined : tocCachePath(tocCacheDir, expectedTocDigest);
}

/**
 * TOC cache writes under way in this process, by file: an open does not wait
 * for its own write, so the next open of the same TOC waits for it here
 * instead of fetching the TOC again.
 */
const savesInFlight = new Map<string, Promise<void>>();

/** Whether the TOC cache has a file for this layer's TOC (not yet whether it is usable). */
async function hasCachedToc(options: TocLoadOptions): Promise<boolean> {
  const path = cachedTocFile(options);
  if (path === undefined) return false;
  await savesInFlight.get(path);
  return access(path).then(() => true, () => false);
}

/** The cached TOC, or undefined when absent, for another blob, or damaged. */
async function readCachedToc(options: TocLoadOptions): Promise<(ParsedToc & { size: number | undefined }) | undefined> {
  const path = cachedTocFile(options);
  const { expectedTocDigest } = options;
  if (path === undefined || expectedTocDigest === undefined) return undefined;
  let file: Buffer;
  try {
    file = await readFile(path);
  } catch {
    return undefined;
  }
  const newline = file.indexOf(0x0a);
  try {
    if (newline < 0) throw new Error('no header line');
    const header = JSON.parse(file.subarray(0, newline).toString('utf8')) as Partial<CachedTocHeader>;
    if (header.version !== 1 || typeof header.tocOffset !== 'number') throw new Error('unknown header');
    // Two blobs with one TOC would be odd; their TOC offsets could still differ, and that offset bounds the last chunk.
    if (header.layerDigest !== options.digest) return undefined;
    const json = file.subarray(newline + 1);
    const parsed = parseChunkDigest(expectedTocDigest)!;
    if (createHash(parsed.algorithm).update(json).digest('hex') !== parsed.hex) throw new Error('content does not match its digest');
    const size = Number.isSafeInteger(header.blobSize) && header.blobSize! > header.tocOffset ? header.blobSize : undefined;
    const { index, reservation } = await parseWithinBudget(json, { expectedTocDigest, tocOffset: header.tocOffset }, options);
    return { index, reservation, size };
  } catch (err) {
    if (err instanceof TocMemoryBudgetError) throw err; // the file is fine; there is no room for it
    options.logger.warn({ path, err: err instanceof Error ? err.message : String(err) }, 'cached TOC unusable; fetching it again');
    await unlink(path).catch(() => {});
    return undefined;
  }
}

/** Writes the TOC to the TOC cache, in the background of the open; never rejects (a failure is logged). */
function saveToc(options: TocLoadOptions, tocDigest: string, tocOffset: number, blobSize: number, json: Buffer): Promise<void> {
  if (options.tocCacheDir === undefined) return Promise.resolve();
  const path = tocCachePath(options.tocCacheDir, tocDigest);
  if (path === undefined) return Promise.resolve();
  const writing = writeCachedToc(options, path, tocOffset, blobSize, json).finally(() => {
    if (savesInFlight.get(path) === writing) savesInFlight.delete(path);
  });
  savesInFlight.set(path, writing);
  return writing;
}

async function writeCachedToc(options: TocLoadOptions, path: string, tocOffset: number, blobSize: number, json: Buffer): Promise<void> {
  const temp = `${path}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const header: CachedTocHeader = { version: 1, layerDigest: options.digest, tocOffset, blobSize };
  try {
    await mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
    // Header and JSON go out in one writev: joined first, a 4 MB TOC cost one more copy on the event loop.
    const headerLine = Buffer.from(`${JSON.stringify(header)}\n`);
    const file = await open(temp, 'wx', 0o600);
    try {
      const { bytesWritten } = await file.writev([headerLine, json]);
      const expected = headerLine.length + json.length;
      if (bytesWritten !== expected) throw new Error(`short write: ${bytesWritten} of ${expected} bytes`);
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => {});
    options.logger.warn({ err, path }, 'cannot save TOC to the TOC cache; the next open will fetch it again');
  }
}

export async function loadToc(options: TocLoadOptions): Promise<LoadedToc> {
  const started = performance.now();
  // The turn only when there is a cached TOC to parse: a layer seen for the
  // first time must not queue behind other layers' parses just to find none.
  if (await hasCachedToc(options)) {
    const { cached, releaseTurn } = await withTurn(options, async () => ({ cached: await readCachedToc(options) }));
    if (cached !== undefined) return { ...cached, size: options.size ?? cached.size, source: 'toc-cache', rangeRequests: 0, releaseTurn, saved: Promise.resolve() };
    releaseTurn();
  }

  const { ref, digest, fetcher, counters, limits } = options;
  const deadline = { ref, digest, timeoutMs: options.timeoutMs, signal: options.signal };
  let rangeRequests = 0;
  const fetch = async (offset: number, length: number): Promise<Buffer> => {
    rangeRequests++;
    try {
      const data = await fetchWithDeadline(fetcher, offset, length, deadline);
      counters.requests++;
      counters.bytesFetched += data.length;
      return data;
    } catch (err) {
      counters.fetchErrors++;
      throw err;
    }
  };

  const { size, tail } = await fetchTail(options, fetch, () => rangeRequests++);
  const tailStart = size - tail.length;
  const footer = parseFooter(tail);
  const tocEnd = size - footer.footerSize;
  if (footer.tocOffset >= tocEnd) throw new InvalidTocError('toc-offset-out-of-range', `TOC offset ${footer.tocOffset} is not inside the ${size}-byte blob`);
  if (tocEnd - footer.tocOffset > limits.maxTocCompressedBytes) {
    throw new InvalidTocError('toc-too-large', `compressed TOC of ${tocEnd - footer.tocOffset} bytes exceeds ${limits.maxTocCompressedBytes}`);
  }
  // Only the part of the TOC the tail missed is fetched the second time.
  const member = footer.tocOffset >= tailStart
    ? tail.subarray(footer.tocOffset - tailStart, tocEnd - tailStart)
    : Buffer.concat([await fetch(footer.tocOffset, tailStart - footer.tocOffset), tail.subarray(0, tocEnd - tailStart)]);
  const fetched = performance.now();
  let turnStarted = fetched;
  const extractAndParse = async (): Promise<ParsedTocWithJson> => {
    turnStarted = performance.now();
    const { json } = await extractTocJson(member, limits.maxTocJsonBytes);
    // The parse checks the expected digest before trusting anything in the JSON.
    return parseWithinBudget(json, { expectedTocDigest: options.expectedTocDigest, tocOffset: footer.tocOffset }, options);
  };
  const queued = tocEnd - footer.tocOffset > UNQUEUED_TOC_COMPRESSED_BYTES;
  const { json, index, reservation, workerMs, releaseTurn } = await (queued ? withTurn(options, extractAndParse) : extractAndParse().then((parsed) => ({ ...parsed, releaseTurn: NO_TURN })));
  const parsed = performance.now();
  // Only a TOC checked against a digest someone vouched for is worth keeping. Written while the caller
  // sizes the layer and gives the turn back: another layer's parse need not wait for this file.
  const saved = options.expectedTocDigest !== undefined ? saveToc(options, options.expectedTocDigest, footer.tocOffset, size, json) : Promise.resolve();
  const phases: TocLoadPhases = {
    fetchMs: Math.round(fetched - started), turnMs: Math.round(turnStarted - fetched), parseMs: Math.round(parsed - turnStarted),
    ...(workerMs !== undefined ? { workerMs: Math.round(workerMs) } : {}),
  };
  return { index, reservation, source: 'network', rangeRequests, size, phases, releaseTurn, saved };
}

/**
 * The blob's last bytes and its size. Without a size from the manifest, one
 * suffix-range request tells both (a HEAD first would cost a round trip).
 */
async function fetchTail(
  options: TocLoadOptions,
  fetch: (offset: number, length: number) => Promise<Buffer>,
  countRequest: () => void,
): Promise<{ size: number; tail: Buffer }> {
  const { ref, digest, fetcher, counters } = options;
  const deadline = { timeoutMs: options.timeoutMs, signal: options.signal };
  const wanted = Math.max(ESTARGZ_FOOTER_SIZE, options.tailSize);
  let size = options.size;
  if (size === undefined && fetcher.tail !== undefined) {
    const tailOf = fetcher.tail;
    countRequest();
    try {
      const got = await withDeadline((signal) => tailOf(wanted, signal), { ref, digest, offset: -wanted, length: wanted, label: 'blob tail read' }, deadline);
      counters.requests++;
      counters.bytesFetched += got.data.length;
      checkSize(got.size, options);
      const expected = Math.min(got.size, wanted);
      if (got.data.length !== expected) throw new LayerUnavailableError(`blob tail read returned ${got.data.length} bytes, expected ${expected}`, { ref, digest });
      return { size: got.size, tail: Buffer.from(got.data.buffer, got.data.byteOffset, got.data.length) };
    } catch (err) {
      counters.fetchErrors++;
      throw err;
    }
  }
  if (size === undefined) {
    const sizeOf = fetcher.size;
    if (sizeOf === undefined) throw new LayerUnavailableError('blob size unknown and the fetcher cannot tell it', { ref, digest });
    size = await withDeadline(sizeOf, { ref, digest, offset: 0, length: 0, label: 'blob size lookup' }, deadline);
  }
  checkSize(size, options);
  const tailLength = Math.min(size, wanted);
  return { size, tail: await fetch(size - tailLength, tailLength) };
}

function checkSize(size: number, options: TocLoadOptions): void {
  if (!Number.isSafeInteger(size) || size <= 0) throw new LayerUnavailableError(`blob size ${size} is not usable`, { ref: options.ref, digest: options.digest });
}

export function resolveTocLimits(overrides: Partial<TocLimits> | undefined): TocLimits {
  return { ...DEFAULT_TOC_LIMITS, ...overrides };
}
