/**
 * Errors a lazily fetched layer throws on purpose. Every rejected read is one of
 * these, so the FUSE layer (which turns any rejection into EIO) and the logs can
 * tell a dead registry from corrupt data from a programming error.
 *
 * A TOC that cannot be used (bad footer, digest mismatch...) surfaces as the
 * estargz module's own InvalidTocError / TocDigestMismatchError: those already
 * carry the reason, and callers treat them as "this layer cannot be lazy".
 */

export class LayerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export interface LayerFetchErrorInit {
  ref: string;
  digest: string;
  offset: number;
  length: number;
  /** The deadline expired before the bytes arrived. */
  timedOut?: boolean;
  /** The layer was closed (or the caller aborted) while the request was in flight. */
  aborted?: boolean;
  cause?: unknown;
}

/** A range of the layer blob could not be fetched: registry down, deadline passed, short answer... */
export class LayerFetchError extends LayerError {
  readonly ref: string;
  readonly digest: string;
  readonly offset: number;
  readonly length: number;
  readonly timedOut: boolean;
  readonly aborted: boolean;

  constructor(message: string, init: LayerFetchErrorInit) {
    const what = `${init.ref}@${init.digest} bytes [${init.offset}, ${init.offset + init.length})`;
    super(`${message}: ${what}`, init.cause !== undefined ? { cause: init.cause } : undefined);
    this.ref = init.ref;
    this.digest = init.digest;
    this.offset = init.offset;
    this.length = init.length;
    this.timedOut = init.timedOut ?? false;
    this.aborted = init.aborted ?? false;
  }
}

/**
 * Fetched bytes did not decompress to what the verified TOC promised. The data
 * is never served nor cached; a later read fetches it again.
 */
export class ChunkVerificationError extends LayerError {
  readonly ref: string;
  readonly digest: string;
  readonly fileName: string;
  readonly chunkOffset: number;

  constructor(init: { ref: string; digest: string; fileName: string; chunkOffset: number; cause: unknown }) {
    const detail = init.cause instanceof Error ? init.cause.message : String(init.cause);
    super(`chunk of ${JSON.stringify(init.fileName)} at ${init.chunkOffset} in ${init.ref}@${init.digest} failed verification: ${detail}`, { cause: init.cause });
    this.ref = init.ref;
    this.digest = init.digest;
    this.fileName = init.fileName;
    this.chunkOffset = init.chunkOffset;
  }
}

/** The layer cannot be used: closed, or it could not be opened at all. */
export class LayerUnavailableError extends LayerError {
  readonly ref: string;
  readonly digest: string;

  constructor(message: string, init: { ref: string; digest: string; cause?: unknown }) {
    super(`${message} (${init.ref}@${init.digest})`, init.cause !== undefined ? { cause: init.cause } : undefined);
    this.ref = init.ref;
    this.digest = init.digest;
  }
}

/**
 * The whole blob was fetched and its bytes do not hash to the digest the layer
 * is known by: whoever served it served another blob under that name. Every
 * read of the layer fails from then on, even of chunks that matched the TOC,
 * because the TOC itself came from that blob.
 */
export class LayerPoisonedError extends LayerUnavailableError {
  readonly expected: string;
  readonly actual: string;

  constructor(init: { ref: string; digest: string; actual: string }) {
    super(`layer blob does not match its digest (it hashes to ${init.actual}); refusing to serve it`, init);
    this.expected = init.digest;
    this.actual = init.actual;
  }
}

/**
 * No TOC digest to check the TOC against, and unverified layers are not allowed.
 * Without that digest every chunk digest comes from an unauthenticated TOC, so
 * "verified" reads would verify nothing.
 */
export class UnverifiedLayerError extends LayerUnavailableError {}

/** A read asked for something that is not a regular file of this layer, or for a nonsense range. */
export class InvalidReadError extends LayerError {}

/**
 * A layer's TOC does not fit in what is left of the daemon's TOC memory budget
 * (`[remote] toc_memory_mib`). The layer cannot be served lazily; it is
 * downloaded like any other layer instead.
 */
export class TocMemoryBudgetError extends LayerUnavailableError {
  /** Bytes the TOC would keep in memory (an estimate before parsing, the index's own figure after). */
  readonly neededBytes: number;
  /** Bytes of the budget free when it was refused. */
  readonly availableBytes: number;
  readonly budgetBytes: number;

  constructor(init: { ref: string; digest: string; neededBytes: number; availableBytes: number; budgetBytes: number }) {
    const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);
    super(
      `TOC needs about ${mib(init.neededBytes)} MiB of memory, but only ${mib(init.availableBytes)} MiB of the ${mib(init.budgetBytes)} MiB TOC memory budget is free`,
      { ref: init.ref, digest: init.digest },
    );
    this.neededBytes = init.neededBytes;
    this.availableBytes = init.availableBytes;
    this.budgetBytes = init.budgetBytes;
  }
}
