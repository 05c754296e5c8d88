/**
 * Label names of containerd's snapshot and garbage-collection protocols.
 * Both sides of a remote snapshot (lazysnap pull and lazysnap serve) and
 * containerd's own unpacker agree on these strings.
 */

/** Remote-snapshot protocol (the original containerd proposal). */
export const REMOTE_SNAPSHOT_REF = 'containerd.io/snapshot/remote_snapshot/ref';
export const REMOTE_SNAPSHOT_DIGEST = 'containerd.io/snapshot/remote_snapshot/digest';
/** Set by the snapshotter on a snapshot it serves remotely. */
export const REMOTE_SNAPSHOT = 'containerd.io/snapshot/remote_snapshot';

/** Target-ref protocol (containerd >= 1.4 unpacker, CRI, nerdctl). */
export const TARGET_SNAPSHOT_REF = 'containerd.io/snapshot.ref';
export const CRI_IMAGE_REF = 'containerd.io/snapshot/cri.image-ref';
export const CRI_LAYER_DIGEST = 'containerd.io/snapshot/cri.layer-digest';
export const CRI_MANIFEST_DIGEST = 'containerd.io/snapshot/cri.manifest-digest';
export const CRI_IMAGE_LAYERS = 'containerd.io/snapshot/cri.image-layers';

/** stargz-snapshotter's labels (ctr-remote images rpull). */
export const STARGZ_REFERENCE = 'containerd.io/snapshot/remote/stargz.reference';
export const STARGZ_DIGEST = 'containerd.io/snapshot/remote/stargz.digest';
export const STARGZ_LAYERS = 'containerd.io/snapshot/remote/stargz.layers';

/** eStargz layer annotation: the TOC's digest, which makes a layer verifiable. */
export const STARGZ_TOC_DIGEST = 'containerd.io/snapshot/stargz/toc.digest';
export const ESTARGZ_UNCOMPRESSED_SIZE = 'io.containers.estargz.uncompressed-size';

/** Annotations with this prefix on a layer descriptor are passed to Prepare. */
export const SNAPSHOT_LABEL_PREFIX = 'containerd.io/snapshot/';

/** Garbage-collection references. */
export const GC_ROOT = 'containerd.io/gc.root';
export const GC_REF_CONTENT_PREFIX = 'containerd.io/gc.ref.content';
export const GC_REF_SNAPSHOT_PREFIX = 'containerd.io/gc.ref.snapshot.';
export const UNCOMPRESSED = 'containerd.io/uncompressed';
