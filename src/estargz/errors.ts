/** Base class of every error this library throws on purpose. */
export class EstargzError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * Why a blob's footer or TOC was refused. A caller that cannot use the TOC should
 * fall back to downloading the layer whole; the reason is for logs and tests.
 */
export type TocErrorReason =
  | 'footer-invalid'
  | 'toc-offset-out-of-range'
  | 'toc-too-large'
  | 'toc-gzip-invalid'
  | 'toc-tar-invalid'
  | 'toc-digest-mismatch'
  | 'malformed-json'
  | 'bad-structure'
  | 'unsupported-version'
  | 'too-many-entries'
  | 'bad-field'
  | 'unknown-type'
  | 'empty-name'
  | 'nul-in-name'
  | 'absolute-path'
  | 'path-traversal'
  | 'name-too-long'
  | 'root-not-directory'
  | 'duplicate-entry'
  | 'parent-not-directory'
  | 'offset-out-of-range'
  | 'size-too-large'
  | 'chunk-without-file'
  | 'chunk-name-mismatch'
  | 'chunk-gap'
  | 'chunk-overlap'
  | 'chunk-overflow'
  | 'chunk-incomplete'
  | 'duplicate-chunk-offset'
  | 'missing-chunk-digest'
  | 'hardlink-missing-target'
  | 'hardlink-to-directory'
  | 'hardlink-cycle';

/** The footer or TOC of a blob is unusable. Never a crash: every refusal is one of these. */
export class InvalidTocError extends EstargzError {
  readonly reason: TocErrorReason;
  /** What is wrong, without the reason and entry name the message adds. */
  readonly detail: string;
  /** The offending entry's name as written in the TOC, when one entry is to blame. */
  readonly entryName: string | undefined;

  constructor(reason: TocErrorReason, detail: string, entryName?: string) {
    super(entryName === undefined ? `invalid eStargz TOC (${reason}): ${detail}` : `invalid eStargz TOC (${reason}) at ${JSON.stringify(entryName)}: ${detail}`);
    this.reason = reason;
    this.detail = detail;
    this.entryName = entryName;
  }
}

/** The footer could not be parsed; a subclass so callers can treat every metadata failure alike. */
export class InvalidFooterError extends InvalidTocError {
  constructor(detail: string) {
    super('footer-invalid', detail);
  }
}

/** The TOC JSON does not hash to the digest the manifest annotation promised. */
export class TocDigestMismatchError extends InvalidTocError {
  readonly expected: string;
  readonly actual: string;

  constructor(expected: string, actual: string) {
    super('toc-digest-mismatch', `TOC digest is ${actual}, expected ${expected}`);
    this.expected = expected;
    this.actual = actual;
  }
}

/** A fetched chunk decompressed fine but is not the content the verified TOC promised. */
export class ChunkDigestMismatchError extends EstargzError {
  readonly expected: string;
  readonly actual: string;
  readonly fileName: string;
  readonly chunkOffset: number;

  constructor(fileName: string, chunkOffset: number, expected: string, actual: string) {
    super(`chunk of ${JSON.stringify(fileName)} at ${chunkOffset} has digest ${actual}, expected ${expected}`);
    this.expected = expected;
    this.actual = actual;
    this.fileName = fileName;
    this.chunkOffset = chunkOffset;
  }
}

/** A fetched chunk is not valid gzip or holds fewer bytes than the TOC says. */
export class ChunkDecodeError extends EstargzError {
  readonly fileName: string;
  readonly chunkOffset: number;

  constructor(fileName: string, chunkOffset: number, detail: string) {
    super(`cannot decode chunk of ${JSON.stringify(fileName)} at ${chunkOffset}: ${detail}`);
    this.fileName = fileName;
    this.chunkOffset = chunkOffset;
  }
}

export type TarErrorReason =
  | 'truncated'
  | 'bad-gzip'
  | 'bad-checksum'
  | 'bad-header'
  | 'bad-pax'
  | 'unsupported-type'
  | 'unsafe-name'
  | 'hardlink-missing-target'
  | 'invalid-tree'
  | 'missing-prioritized-file';

/** The writer's input tar cannot be turned into an eStargz blob that readers would accept. */
export class InvalidTarError extends EstargzError {
  readonly reason: TarErrorReason;
  readonly entryName: string | undefined;

  constructor(reason: TarErrorReason, detail: string, entryName?: string) {
    super(entryName === undefined ? `invalid input tar (${reason}): ${detail}` : `invalid input tar (${reason}) at ${JSON.stringify(entryName)}: ${detail}`);
    this.reason = reason;
    this.entryName = entryName;
  }
}
