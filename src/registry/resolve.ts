// From a reference to a platform's image manifest: fetch what the tag or
// digest names, and if it is an index, pick the platform and fetch that.
// Every document is hashed and compared with the digest it was fetched by
// (or, for tags, with the digest the registry claims), because everything
// downstream (layer digests, the eStargz TOC digest) is trusted only as far
// as the manifest is.
import { digestOf, parseDigest, verifyDigest } from './digest.js';
import { DigestMismatchError, InvalidContentError, NoMatchingPlatformError } from './errors.js';
import { fetchBlob, pullScope, type CallOptions } from './blobs.js';
import { parseImageConfig, parseManifestDocument, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type ManifestDocument } from './manifest.js';
import { MANIFEST_ACCEPT, isIndexMediaType } from './media-types.js';
import { DEFAULT_PLATFORM, formatPlatform, normalizePlatform, selectPlatformManifest, type Platform } from './platform.js';
import type { Reference } from './reference.js';
import { headerValue, type RegistryRequest, type RegistryTransport } from './transport.js';

/** Manifests larger than this are refused, as containerd does: no real manifest comes close. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;
const MAX_INDEX_DEPTH = 4;

export interface FetchedManifest {
  /** The reference pinned to the fetched digest. */
  ref: Reference;
  descriptor: Descriptor;
  document: ManifestDocument;
  raw: Buffer;
}

export interface ResolvedImage {
  /** The reference as asked for. */
  ref: Reference;
  /** What the reference points at: the index for multi-platform images, else the manifest. */
  root: Descriptor;
  /** The platform manifest's descriptor (from the index entry when there is one, platform included). */
  descriptor: Descriptor;
  manifest: ImageManifest;
  /** The manifest bytes exactly as served; their digest is descriptor.digest. */
  raw: Buffer;
  /** Set when the reference named an index (the innermost one for nested indexes). */
  index?: { descriptor: Descriptor; index: ImageIndex; raw: Buffer };
  platform: Platform;
}

export interface FetchedConfig {
  descriptor: Descriptor;
  config: ImageConfig;
  raw: Buffer;
}

/**
 * GETs a manifest or index by the reference's digest (if any) or tag.
 * `expected` is the descriptor that led here (an index entry); its size,
 * digest and kind are checked against what arrives.
 */
export async function fetchManifest(
  transport: RegistryTransport,
  ref: Reference,
  opts: CallOptions & { expected?: Descriptor } = {},
): Promise<FetchedManifest> {
  const expected = opts.expected;
  const object = expected?.digest ?? ref.object;
  const req: RegistryRequest = {
    ref,
    method: 'GET',
    path: `/v2/${ref.repository}/manifests/${object}`,
    headers: { accept: MANIFEST_ACCEPT },
    scopes: pullScope(ref),
    what: 'manifest',
    // Resolving what the reference names needs a host trusted to resolve
    // (tags are mutable); a manifest an index pointed to is content like any
    // blob, as in containerd's resolver and fetcher.
    capability: expected ? 'pull' : 'resolve',
    digest: expected?.digest ?? ref.digest,
    signal: opts.signal,
    timeoutMs: opts.timeoutMs,
  };
  const { res, data } = await transport.fetchBuffer(req, expected ? Math.min(expected.size, MAX_MANIFEST_BYTES) : MAX_MANIFEST_BYTES);
  const init = transport.errorInit(req, res.url, res.status);

  let digest: string;
  const pinned = expected?.digest ?? ref.digest;
  if (pinned !== undefined) {
    verifyDigest(data, pinned, 'manifest', init);
    digest = pinned;
  } else {
    // By tag there is nothing to verify against but the registry's own
    // claim; when it makes one, it has to be right.
    const claimed = headerValue(res.headers, 'docker-content-digest');
    const parsed = claimed !== undefined ? parseDigest(claimed) : null;
    digest = digestOf(data, parsed?.algorithm ?? 'sha256');
    if (claimed !== undefined && parsed && claimed !== digest) {
      throw new DigestMismatchError('manifest digest does not match Docker-Content-Digest', claimed, digest, init);
    }
  }
  if (expected && data.length !== expected.size) {
    throw new InvalidContentError(`manifest is ${data.length} bytes, its descriptor says ${expected.size}`, { ...init, digest });
  }
  const document = parseManifestDocument(data, headerValue(res.headers, 'content-type'), { ...init, digest });
  if (expected && isIndexMediaType(expected.mediaType) !== (document.kind === 'index')) {
    throw new InvalidContentError(`descriptor says ${expected.mediaType} but the registry served ${document.mediaType}`, { ...init, digest });
  }
  const descriptor: Descriptor = expected ? { ...expected } : { mediaType: document.mediaType, digest, size: data.length };
  return { ref: ref.withDigest(digest), descriptor, document, raw: data };
}

/** Fetches the reference and, through indexes, the manifest for `platform` (default linux/amd64). */
export async function resolveImage(
  transport: RegistryTransport,
  ref: Reference,
  opts: CallOptions & { platform?: Platform } = {},
): Promise<ResolvedImage> {
  const platform = normalizePlatform(opts.platform ?? DEFAULT_PLATFORM);
  let fetched = await fetchManifest(transport, ref, opts);
  const root = fetched.descriptor;
  let index: ResolvedImage['index'];
  for (let depth = 0; fetched.document.kind === 'index'; depth++) {
    const doc = fetched.document.index;
    if (depth >= MAX_INDEX_DEPTH) {
      throw new InvalidContentError(`indexes nested deeper than ${MAX_INDEX_DEPTH}`, { ref: ref.toString(), digest: fetched.descriptor.digest });
    }
    index = { descriptor: fetched.descriptor, index: doc, raw: fetched.raw };
    const choice = selectPlatformManifest(doc.manifests, platform);
    if (!choice) {
      const available = doc.manifests.filter((m) => m.platform).map((m) => formatPlatform(normalizePlatform(m.platform!)));
      throw new NoMatchingPlatformError(formatPlatform(platform), available, { ref: ref.toString(), digest: fetched.descriptor.digest });
    }
    fetched = await fetchManifest(transport, ref, { ...opts, expected: choice });
  }
  const out: ResolvedImage = {
    ref,
    root,
    descriptor: fetched.descriptor,
    manifest: fetched.document.manifest,
    raw: fetched.raw,
    platform,
  };
  if (index) out.index = index;
  return out;
}

/** The config blob a manifest points to, verified and parsed. */
export async function fetchConfig(
  transport: RegistryTransport,
  ref: Reference,
  manifestOrDescriptor: ImageManifest | Descriptor,
  opts: CallOptions = {},
): Promise<FetchedConfig> {
  const descriptor = 'config' in manifestOrDescriptor ? manifestOrDescriptor.config : manifestOrDescriptor;
  const raw = await fetchBlob(transport, ref, descriptor.digest, { ...opts, size: descriptor.size, maxBytes: MAX_CONFIG_BYTES });
  const config = parseImageConfig(raw, { ref: ref.toString(), digest: descriptor.digest });
  return { descriptor, config, raw };
}
