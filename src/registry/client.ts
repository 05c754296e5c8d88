// The registry client the rest of lazysnap holds: one per daemon, built in
// cli/ from config, shared by every layer and pull. It owns one undici Agent
// (so connections to a registry are reused across layers) and one token
// cache; the operations themselves live in resolve.ts, blobs.ts, push.ts.
import {
  blobSize,
  fetchBlob,
  openBlob,
  readRange,
  readTail,
  statBlob,
  type BlobStream,
  type BlobTail,
  type CallOptions,
  type FetchBlobOptions,
} from './blobs.js';
import { mountBlob, pushBlob, pushManifest, type BlobSource, type PushBlobOptions, type PushManifestOptions, type PushedBlob } from './push.js';
import type { Descriptor, ImageManifest } from './manifest.js';
import { DEFAULT_PLATFORM, normalizePlatform, parsePlatform, type Platform } from './platform.js';
import { parseReference, toReference, type Reference } from './reference.js';
import { fetchConfig, fetchManifest, resolveImage, type FetchedConfig, type FetchedManifest, type ResolvedImage } from './resolve.js';
import { RegistryTransport, type Timeouts, type TransportOptions } from './transport.js';
import type { RetryPolicy } from './retry.js';

export interface RegistryClientOptions extends TransportOptions {
  /** Platform picked from indexes, `os/arch[/variant]` or an object; default linux/amd64. */
  platform?: Platform | string;
}

export type RefLike = string | Reference;

export class RegistryClient {
  readonly platform: Platform;
  private readonly transport: RegistryTransport;

  constructor(options: RegistryClientOptions = {}) {
    const { platform, ...transportOptions } = options;
    this.platform = typeof platform === 'string' ? parsePlatform(platform) : normalizePlatform(platform ?? DEFAULT_PLATFORM);
    this.transport = new RegistryTransport(transportOptions);
  }

  get timeouts(): Readonly<Timeouts> {
    return this.transport.timeouts;
  }

  get retryPolicy(): Readonly<RetryPolicy> {
    return this.transport.retry;
  }

  /** Parses and normalises a reference (`busybox` → `docker.io/library/busybox:latest`). */
  parse(ref: string): Reference {
    return parseReference(ref);
  }

  /** The manifest for this client's platform (or opts.platform), through an index if there is one. */
  resolve(ref: RefLike, opts: CallOptions & { platform?: Platform | string } = {}): Promise<ResolvedImage> {
    const platform = opts.platform === undefined ? this.platform : typeof opts.platform === 'string' ? parsePlatform(opts.platform) : opts.platform;
    return resolveImage(this.transport, toReference(ref), { ...opts, platform });
  }

  /** The manifest or index the reference names, without platform selection. */
  getManifest(ref: RefLike, opts: CallOptions & { expected?: Descriptor } = {}): Promise<FetchedManifest> {
    return fetchManifest(this.transport, toReference(ref), opts);
  }

  getConfig(ref: RefLike, manifestOrDescriptor: ImageManifest | Descriptor, opts: CallOptions = {}): Promise<FetchedConfig> {
    return fetchConfig(this.transport, toReference(ref), manifestOrDescriptor, opts);
  }

  /** A whole blob in memory, digest-verified. For small blobs (configs, TOCs); see openBlob for layers. */
  fetchBlob(ref: RefLike, digest: string, opts: FetchBlobOptions = {}): Promise<Buffer> {
    return fetchBlob(this.transport, toReference(ref), digest, opts);
  }

  /** A blob as a stream that fails at its end if the digest or length is wrong. */
  openBlob(ref: RefLike, digest: string, opts: CallOptions & { size?: number } = {}): Promise<BlobStream> {
    return openBlob(this.transport, toReference(ref), digest, opts);
  }

  /** Exactly `length` bytes of the blob from `offset` (not digest-verified: a range cannot be). */
  readRange(ref: RefLike, digest: string, offset: number, length: number, opts: CallOptions = {}): Promise<Buffer> {
    return readRange(this.transport, toReference(ref), digest, offset, length, opts);
  }

  /** The last `length` bytes of the blob (all of it when shorter) and its size, in one request. */
  readTail(ref: RefLike, digest: string, length: number, opts: CallOptions = {}): Promise<BlobTail> {
    return readTail(this.transport, toReference(ref), digest, length, opts);
  }

  blobSize(ref: RefLike, digest: string, opts: CallOptions = {}): Promise<number> {
    return blobSize(this.transport, toReference(ref), digest, opts);
  }

  async blobExists(ref: RefLike, digest: string, opts: CallOptions = {}): Promise<boolean> {
    return (await statBlob(this.transport, toReference(ref), digest, opts)).exists;
  }

  pushBlob(ref: RefLike, source: BlobSource, opts: PushBlobOptions = {}): Promise<PushedBlob> {
    return pushBlob(this.transport, toReference(ref), source, opts);
  }

  /** Cross-repository mount within one registry; false when the registry declined (nothing is uploaded). */
  mountBlob(ref: RefLike, digest: string, from: RefLike, opts: CallOptions = {}): Promise<boolean> {
    return mountBlob(this.transport, toReference(ref), digest, toReference(from), opts);
  }

  pushManifest(ref: RefLike, manifest: Uint8Array | object, opts: PushManifestOptions = {}): Promise<Descriptor> {
    return pushManifest(this.transport, toReference(ref), manifest, opts);
  }

  /** Closes pooled connections; in-flight requests finish first. */
  close(): Promise<void> {
    return this.transport.close();
  }
}
