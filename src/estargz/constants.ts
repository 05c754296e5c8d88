/** Name of the tar entry that carries the TOC JSON, in its own gzip member before the footer. */
export const TOC_TAR_NAME = 'stargz.index.json';

/**
 * Landmark entries mark where the prioritized (prefetch) part of a blob ends.
 * Both are 1-byte regular files whose content is 0x0f, as stargz-snapshotter writes them.
 */
export const PREFETCH_LANDMARK = '.prefetch.landmark';
export const NO_PREFETCH_LANDMARK = '.no.prefetch.landmark';
export const LANDMARK_CONTENT = 0x0f;

/** Manifest layer annotation holding the digest of the uncompressed TOC JSON. */
export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';

/** Layer annotation stargz-snapshotter uses to advertise the uncompressed size (diffID source length). */
export const UNCOMPRESSED_SIZE_ANNOTATION = 'io.containers.estargz.uncompressed-size';

export const ESTARGZ_FOOTER_SIZE = 51;
export const LEGACY_FOOTER_SIZE = 47;

/** stargz-snapshotter's default chunk size. */
export const DEFAULT_CHUNK_SIZE = 4 << 20;
