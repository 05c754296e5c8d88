/**
 * eStargz, the lazily pullable layer format of containerd/stargz-snapshotter.
 *
 * Reading: readTocIndex (footer, TOC, digest check, validation) gives a TocIndex
 * for path lookups and directory listings; a file's chunks tell which compressed
 * blob range to fetch, and inflateChunk turns those bytes into verified content.
 * Writing: writeEstargz / buildEstargz turn a tar stream into an eStargz blob.
 */
export {
  DEFAULT_CHUNK_SIZE, ESTARGZ_FOOTER_SIZE, LANDMARK_CONTENT, LEGACY_FOOTER_SIZE, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK,
  TOC_DIGEST_ANNOTATION, TOC_TAR_NAME, UNCOMPRESSED_SIZE_ANNOTATION,
} from './constants.js';
export {
  ChunkDecodeError, ChunkDigestMismatchError, EstargzError, InvalidFooterError, InvalidTarError, InvalidTocError, TocDigestMismatchError,
  type TarErrorReason, type TocErrorReason,
} from './errors.js';
export { encodeFooter, encodeLegacyFooter, parseFooter, type Footer, type FooterKind } from './footer.js';
export { encodeTocJson, encodeTocMember, extractTocJson, type TocEntryJson, type TocEntryType, type TocJson, type TocJsonBytes } from './toc.js';
export { DEFAULT_TOC_LIMITS, type TocLimits } from './validate.js';
export { TocIndex, chunksForRange, type FileChunk, type Landmark, type TocNode, type TocNodeType } from './toc-index.js';
export { TocTable, findSortedEntry } from './toc-table.js';
export { inflateChunk, verifyChunk } from './chunk.js';
export { openEstargz, parseTocIndex, readTocIndex, type BlobRangeReader, type ParseTocOptions, type ReadTocOptions } from './reader.js';
export { buildEstargz, writeEstargz, type EstargzBuildResult, type EstargzWriterOptions } from './writer.js';
export { fromTransferable, toTransferable, transferList, type TransferableTocIndex } from './toc-transfer.js';
