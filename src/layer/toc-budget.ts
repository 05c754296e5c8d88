/**
 * The daemon's memory for parsed TOCs, bounded by configuration
 * (`[remote] toc_memory_mib`). Every open layer holds a reservation for what
 * its TOC index and file tree keep alive: estimated from the TOC JSON before
 * parsing (so a layer that cannot fit is refused before the parse costs
 * anything), then set to the index's own figure once built, and released when
 * the layer closes. A layer that does not fit fails to open with
 * TocMemoryBudgetError and is downloaded instead of served lazily.
 *
 * Parsing a TOC briefly costs several times what the result keeps (the JSON
 * text and its object graph), so parses also take turns: one at a time per
 * budget bounds that transient to one TOC, and the reservation made before the
 * parse covers that transient too (a TOC whose parse alone would not fit is
 * refused before it starts).
 */
import { TocMemoryBudgetError } from './errors.js';

export const DEFAULT_TOC_MEMORY_BYTES = 512 * 2 ** 20;

/**
 * The least one TOC entry keeps once indexed, whatever its content: a node's
 * typed-array columns, its name slot, its directory entry and its file-tree
 * entry (about 120 bytes); a chunk entry's columns (48 bytes). Measured with
 * test/bench/toc-memory.ts: about 150 bytes per entry for small files.
 */
const MIN_BYTES_PER_NODE = 120;
const MIN_BYTES_PER_CHUNK = 48;
const TYPE_KEY = Buffer.from('"type"');
const CHUNK_VALUE = Buffer.from('"chunk"');
const COLON = 0x3a;

function isJsonSpace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

/** Whether `buffer` holds, from `at` on, a colon and then `"chunk"`, with JSON whitespace allowed around the colon. */
function chunkValueAt(buffer: Buffer, at: number): boolean {
  while (isJsonSpace(buffer[at])) at++;
  if (buffer[at++] !== COLON) return false;
  while (isJsonSpace(buffer[at])) at++;
  for (let i = 0; i < CHUNK_VALUE.length; i++) if (buffer[at + i] !== CHUNK_VALUE[i]) return false;
  return true;
}

/**
 * A lower estimate, from the JSON alone, of what indexing this TOC will keep:
 * every entry has a "type" key, and chunk entries say "chunk" there. The
 * parse replaces it with the real figure, so a TOC that hides its size only
 * gets as far as one parse. One pass over the JSON: it runs on the event
 * loop just before a big TOC's parse, where a second pass cost 4-5 ms for a
 * 4 MB TOC.
 */
export function estimateTocMemory(json: Uint8Array): number {
  const buffer = Buffer.from(json.buffer, json.byteOffset, json.byteLength);
  let nodes = 0;
  let chunks = 0;
  for (let at = buffer.indexOf(TYPE_KEY); at >= 0; at = buffer.indexOf(TYPE_KEY, at + TYPE_KEY.length)) {
    if (chunkValueAt(buffer, at + TYPE_KEY.length)) chunks++;
    else nodes++;
  }
  return nodes * MIN_BYTES_PER_NODE + chunks * MIN_BYTES_PER_CHUNK;
}

/**
 * What parsing a TOC needs while it runs: the JSON text, its decoded string and
 * the parsed object graph, measured at about 2.5 times the JSON's size (a
 * 125 MB TOC of a million entries peaked 315 MiB above what its index keeps,
 * test/bench/toc-memory.ts); 3 times leaves some room.
 */
const PARSE_BYTES_PER_JSON_BYTE = 3;

/** The reservation a TOC needs before its parse: the larger of the parse's transient and what the index will keep. */
export function tocParseMemory(json: Uint8Array): number {
  return Math.max(estimateTocMemory(json), json.byteLength * PARSE_BYTES_PER_JSON_BYTE);
}

interface LayerContext {
  ref: string;
  digest: string;
}

/** One layer's share of the budget. */
export class TocMemoryReservation {
  private released = false;

  constructor(
    private readonly budget: TocMemoryBudget,
    private readonly context: LayerContext,
    private held: number,
  ) {}

  get bytes(): number {
    return this.released ? 0 : this.held;
  }

  /** Sets the reservation to `bytes`; growth that does not fit throws TocMemoryBudgetError and leaves it as it was. */
  resize(bytes: number): void {
    if (this.released) throw new RangeError('reservation already released');
    this.budget.take(bytes - this.held, this.context, bytes);
    this.held = bytes;
  }

  /** Gives the bytes back (idempotent). */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.budget.take(-this.held, this.context, 0);
  }
}

export class TocMemoryBudget {
  readonly totalBytes: number;
  private used = 0;
  private turn: Promise<void> = Promise.resolve();

  constructor(totalBytes: number = DEFAULT_TOC_MEMORY_BYTES) {
    if (!Number.isSafeInteger(totalBytes) || totalBytes <= 0) throw new RangeError(`TOC memory budget must be a positive number of bytes, got ${totalBytes}`);
    this.totalBytes = totalBytes;
  }

  get usedBytes(): number {
    return this.used;
  }

  get availableBytes(): number {
    return this.totalBytes - this.used;
  }

  /** Reserves `bytes` for a layer, or throws TocMemoryBudgetError when they do not fit. */
  reserve(bytes: number, context: LayerContext): TocMemoryReservation {
    this.take(bytes, context, bytes);
    return new TocMemoryReservation(this, context, bytes);
  }

  /** Runs `work` when no other work of this budget runs: TOC parses take turns. */
  inTurn<T>(work: () => Promise<T>): Promise<T> {
    const result = this.turn.then(work);
    // The next turn waits for this one to settle, but must not hold on to its result (a TOC's JSON, say).
    this.turn = result.then(() => undefined, () => undefined);
    return result;
  }

  /**
   * Waits for the turn and keeps it until the returned function is called
   * (once is enough; later calls do nothing). A layer holds it from its parse
   * until its reservation is cut down to what it keeps: a parse that started
   * in between would find the parse-sized reservation still taken and be
   * refused for want of room that was about to be freed.
   */
  async takeTurn(): Promise<() => void> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const previous = this.turn;
    this.turn = previous.then(() => held);
    await previous;
    return release;
  }

  /** @internal Moves `delta` bytes into (or, negative, out of) use. */
  take(delta: number, context: LayerContext, neededBytes: number): void {
    if (!Number.isSafeInteger(delta)) throw new RangeError(`TOC memory reservation must be whole bytes, got ${delta}`);
    if (delta > 0 && this.used + delta > this.totalBytes) {
      throw new TocMemoryBudgetError({ ...context, neededBytes, availableBytes: this.availableBytes + (neededBytes - delta), budgetBytes: this.totalBytes });
    }
    this.used += delta;
  }
}
