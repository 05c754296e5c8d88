// Shapes of the JSON documents the client reads and writes, and the checks
// that turn untrusted bytes into them. Validation is strict on the fields we
// use (digests, sizes, media types) and lenient on everything else, so
// annotations and future fields pass through untouched.
import { parseDigest } from './digest.js';
import { InvalidContentError, UnsupportedMediaTypeError, type RegistryErrorInit } from './errors.js';
import { MediaType, baseMediaType, isIndexMediaType, isManifestMediaType, isSchema1MediaType } from './media-types.js';
import type { Platform } from './platform.js';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** The parts of an image config the client and its callers care about. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  'os.version'?: string;
  created?: string;
  config?: Record<string, unknown>;
  rootfs?: { type: string; diff_ids: string[] };
  history?: unknown[];
  [key: string]: unknown;
}

export type ManifestDocument =
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest }
  | { kind: 'index'; mediaType: string; index: ImageIndex };

/**
 * Parses a manifest or index. The media type comes from the Content-Type
 * header when it is a known one, else from the document's own `mediaType`
 * field, else from its shape: some registries and static mirrors answer
 * `application/json`.
 */
export function parseManifestDocument(raw: Uint8Array, contentType: string | undefined, init: RegistryErrorInit = {}): ManifestDocument {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'));
  } catch (err) {
    throw new InvalidContentError('manifest is not valid JSON', { ...init, cause: err });
  }
  if (!isObject(doc)) throw new InvalidContentError('manifest is not a JSON object', init);

  const header = baseMediaType(contentType);
  const field = typeof doc.mediaType === 'string' ? doc.mediaType : '';
  let mediaType: string;
  if (isIndexMediaType(header) || isManifestMediaType(header) || isSchema1MediaType(header)) mediaType = header;
  else if (field) mediaType = field;
  else if (Array.isArray(doc.manifests)) mediaType = MediaType.OciIndex;
  else if (isObject(doc.config) && Array.isArray(doc.layers)) mediaType = MediaType.OciManifest;
  else mediaType = header;

  if (isSchema1MediaType(mediaType) || doc.schemaVersion === 1) {
    throw new UnsupportedMediaTypeError('Docker schema 1 manifests are not supported', mediaType || MediaType.DockerSchema1Manifest, init);
  }
  // A document whose body contradicts its header is how manifest-confusion
  // attacks work (CVE-2021-41190); refuse it rather than guess.
  if (field && header && field !== header && (isIndexMediaType(header) || isManifestMediaType(header))) {
    throw new InvalidContentError(`manifest mediaType field ${field} contradicts Content-Type ${header}`, init);
  }
  if (doc.schemaVersion !== 2) throw new InvalidContentError(`unsupported manifest schemaVersion ${String(doc.schemaVersion)}`, init);

  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw new InvalidContentError('index has no manifests array', init);
    if (doc.config !== undefined || doc.layers !== undefined) throw new InvalidContentError('index must not have config or layers', init);
    doc.manifests.forEach((d, i) => checkDescriptor(d, `manifests[${i}]`, init));
    return { kind: 'index', mediaType, index: doc as unknown as ImageIndex };
  }
  if (isManifestMediaType(mediaType)) {
    if (doc.manifests !== undefined) throw new InvalidContentError('manifest must not have a manifests array', init);
    checkDescriptor(doc.config, 'config', init);
    if (!Array.isArray(doc.layers)) throw new InvalidContentError('manifest has no layers array', init);
    doc.layers.forEach((d, i) => checkDescriptor(d, `layers[${i}]`, init));
    return { kind: 'manifest', mediaType, manifest: doc as unknown as ImageManifest };
  }
  throw new UnsupportedMediaTypeError('unsupported manifest media type', mediaType, init);
}

export function checkDescriptor(d: unknown, where: string, init: RegistryErrorInit = {}): asserts d is Descriptor {
  if (!isObject(d)) throw new InvalidContentError(`${where} is not a descriptor object`, init);
  if (typeof d.mediaType !== 'string' || d.mediaType === '') throw new InvalidContentError(`${where} has no mediaType`, init);
  if (typeof d.digest !== 'string' || !parseDigest(d.digest)) {
    throw new InvalidContentError(`${where} has an invalid digest ${JSON.stringify(d.digest)}`, init);
  }
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw new InvalidContentError(`${where} has an invalid size ${JSON.stringify(d.size)}`, init);
  }
}

export function parseImageConfig(raw: Uint8Array, init: RegistryErrorInit = {}): ImageConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'));
  } catch (err) {
    throw new InvalidContentError('image config is not valid JSON', { ...init, cause: err });
  }
  if (!isObject(doc)) throw new InvalidContentError('image config is not a JSON object', init);
  return doc as ImageConfig;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
