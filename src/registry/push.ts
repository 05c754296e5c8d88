// Pushing: blobs (monolithic or chunked), cross-repository mounts, and
// manifests. Used by `lazysnap convert` to publish eStargz images and by the
// tests to build fixtures in a real registry.
//
// None of these requests is retried: POST/PATCH/PUT are not idempotent
// under the distribution spec (a retried PATCH appends twice), so a failure
// surfaces to the caller, who can start the upload again.
import type { Readable } from 'node:stream';
import { ScopeSet } from './auth.js';
import { statBlob, type CallOptions } from './blobs.js';
import { assertDigest, digestOf } from './digest.js';
import { DigestMismatchError, InvalidContentError, RegistryError } from './errors.js';
import { parseManifestDocument, type Descriptor } from './manifest.js';
import { parseReference, type Reference } from './reference.js';
import { discard, headerValue, type RegistryRequest, type RegistryTransport } from './transport.js';

/** A blob to push: bytes in memory, or a stream whose size and digest the caller already knows. */
export type BlobSource = Uint8Array | { stream: Readable | AsyncIterable<Uint8Array>; size: number; digest: string };

export interface PushBlobOptions extends CallOptions {
  /** For in-memory data: checked against the data. Required for streams (in the source). */
  digest?: string;
  /**
   * Upload in PATCH chunks of this many bytes; undefined uploads in one PUT.
   * Chunks bound memory and let very large layers go through proxies that
   * cap request bodies.
   */
  chunkSize?: number;
  /** Repositories on the same registry that may already hold the blob; tried with ?mount=&from=. */
  mountFrom?: readonly (string | Reference)[];
  /** Skip the HEAD that avoids uploading what the repository already has. */
  skipExistsCheck?: boolean;
}

export interface PushedBlob {
  digest: string;
  size: number;
  /** `existed`: the HEAD found it; `mounted`: a cross-repository mount; `uploaded`: bytes were sent. */
  how: 'existed' | 'mounted' | 'uploaded';
}

export interface PushManifestOptions extends CallOptions {
  /** Default: the Content-Type the document declares in its `mediaType` field, or its shape. */
  mediaType?: string;
  /** Push by digest even when the reference has a tag. */
  byDigest?: boolean;
}

function pushScopes(ref: Reference, extra: readonly Reference[] = []): string[] {
  const scopes = new ScopeSet([ScopeSet.repository(ref.repository, ['pull', 'push'])]);
  for (const from of extra) scopes.add(ScopeSet.repository(from.repository, ['pull']));
  return scopes.toArray();
}

export async function pushBlob(
  transport: RegistryTransport,
  ref: Reference,
  source: BlobSource,
  opts: PushBlobOptions = {},
): Promise<PushedBlob> {
  const inMemory = source instanceof Uint8Array;
  const size = inMemory ? source.length : source.size;
  let digest: string;
  if (inMemory) {
    const algorithm = opts.digest ? assertDigest(opts.digest).algorithm : 'sha256';
    digest = digestOf(source, algorithm);
    if (opts.digest !== undefined && opts.digest !== digest) {
      throw new DigestMismatchError('blob to push does not match its stated digest', opts.digest, digest, { ref: ref.toString() });
    }
  } else {
    digest = source.digest;
    assertDigest(digest, { ref: ref.toString(), digest });
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`blob size must be a non-negative integer, got ${size}`);
  }
  if (opts.chunkSize !== undefined && (!Number.isSafeInteger(opts.chunkSize) || opts.chunkSize <= 0)) {
    throw new RangeError(`chunkSize must be a positive integer, got ${opts.chunkSize}`);
  }
  const call: CallOptions = { signal: opts.signal, timeoutMs: opts.timeoutMs };

  if (!opts.skipExistsCheck) {
    const stat = await statBlob(transport, ref, digest, { ...call, scopes: pushScopes(ref), capability: 'push' });
    if (stat.exists) return { digest, size, how: 'existed' };
  }

  let location: string | undefined;
  const candidates = (opts.mountFrom ?? [])
    .map((r) => (typeof r !== 'string' ? r : looksLikeHost(r) ? parseReference(r) : parseReference(`${ref.registry}/${r}`)))
    .filter((from) => from.registry === ref.registry && from.repository !== ref.repository);
  for (const [i, from] of candidates.entries()) {
    const session = await startUpload(transport, ref, digest, call, from);
    if (session === null) return { digest, size, how: 'mounted' };
    // A declined mount opens an upload session; keep the last one for the upload.
    if (i < candidates.length - 1) await cancelUpload(transport, ref, session, call);
    else location = session;
  }
  location ??= (await startUpload(transport, ref, digest, call))!;

  const body = inMemory ? Buffer.from(source.buffer, source.byteOffset, source.byteLength) : source.stream;
  if (opts.chunkSize === undefined) {
    await putUpload(transport, ref, location, digest, call, inMemory ? (body as Buffer) : (body as Readable), size);
  } else {
    location = await patchChunks(transport, ref, location, digest, call, body, size, opts.chunkSize);
    await putUpload(transport, ref, location, digest, call, undefined, 0);
  }
  return { digest, size, how: 'uploaded' };
}

/** Mounts `digest` from `from` into `ref`'s repository; false when the registry would not. */
export async function mountBlob(
  transport: RegistryTransport,
  ref: Reference,
  digest: string,
  from: Reference,
  opts: CallOptions = {},
): Promise<boolean> {
  assertDigest(digest, { ref: ref.toString(), digest });
  if (from.registry !== ref.registry) return false;
  const session = await startUpload(transport, ref, digest, opts, from);
  if (session === null) return true;
  await cancelUpload(transport, ref, session, opts);
  return false;
}

/** Whether a mountFrom string starts with a registry host (else it is a repository on the target's registry). */
function looksLikeHost(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash === -1) return false;
  const first = s.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost';
}

/**
 * POST to start an upload, or to mount when `from` is given. Returns the
 * upload session's URL, or null when the blob was mounted (201).
 */
async function startUpload(
  transport: RegistryTransport,
  ref: Reference,
  digest: string,
  opts: CallOptions,
  from?: Reference,
): Promise<string | null> {
  const query = from ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from.repository)}` : '';
  const req: RegistryRequest = {
    ref,
    method: 'POST',
    path: `/v2/${ref.repository}/blobs/uploads/${query}`,
    headers: { 'content-length': '0' },
    scopes: pushScopes(ref, from ? [from] : []),
    what: from ? `blob mount from ${from.repository}` : 'blob upload',
    digest,
    signal: opts.signal,
    timeoutMs: opts.timeoutMs,
    accept: (s) => s === 201 || s === 202,
  };
  return transport.execute(req, async (res) => {
    await discard(res.body);
    if (res.status === 201 && from) return null;
    const location = headerValue(res.headers, 'location');
    if (res.status !== 202 || !location) {
      throw new RegistryError(`${req.what} to ${ref}: unexpected answer without an upload Location`, transport.errorInit(req, res.url, res.status));
    }
    return new URL(location, res.url).toString();
  });
}

async function cancelUpload(transport: RegistryTransport, ref: Reference, location: string, opts: CallOptions): Promise<void> {
  try {
    await transport.execute(
      {
        ref,
        method: 'DELETE',
        path: location,
        scopes: pushScopes(ref),
        what: 'blob upload cancel',
        signal: opts.signal,
        timeoutMs: opts.timeoutMs,
        accept: () => true,
      },
      async (res) => discard(res.body),
    );
  } catch {
    // Abandoned sessions are garbage-collected by the registry.
  }
}

async function patchChunks(
  transport: RegistryTransport,
  ref: Reference,
  location: string,
  digest: string,
  opts: CallOptions,
  body: Buffer | Readable | AsyncIterable<Uint8Array>,
  size: number,
  chunkSize: number,
): Promise<string> {
  let offset = 0;
  const sendChunk = async (chunk: Buffer): Promise<void> => {
    const end = offset + chunk.length - 1;
    const req: RegistryRequest = {
      ref,
      method: 'PATCH',
      path: location,
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(chunk.length),
        // The distribution spec's Content-Range for uploads has no `bytes ` unit.
        'content-range': `${offset}-${end}`,
      },
      body: chunk,
      scopes: pushScopes(ref),
      what: `blob chunk ${offset}-${end}`,
      digest,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs,
      accept: (s) => s === 202,
    };
    location = await transport.execute(req, async (res) => {
      await discard(res.body);
      const init = transport.errorInit(req, res.url, res.status);
      const range = headerValue(res.headers, 'range');
      // The registry says how much it holds; anything but what we sent means
      // the session is out of step and the upload would be corrupt.
      if (range !== undefined) {
        const m = /^(?:bytes=)?0-(\d+)$/.exec(range.trim());
        if (!m || Number(m[1]) !== end) throw new RegistryError(`registry holds ${range} after chunk ${offset}-${end}`, init);
      }
      const next = headerValue(res.headers, 'location');
      if (!next) throw new RegistryError('chunk accepted without a Location for the next one', init);
      return new URL(next, res.url).toString();
    });
    offset += chunk.length;
  };

  if (Buffer.isBuffer(body)) {
    for (let at = 0; at < body.length; at += chunkSize) await sendChunk(body.subarray(at, Math.min(body.length, at + chunkSize)));
  } else {
    // Regroup the stream's chunks into chunkSize pieces.
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    for await (const piece of body as AsyncIterable<Uint8Array>) {
      let buf = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
      while (buf.length > 0) {
        const take = Math.min(buf.length, chunkSize - pendingBytes);
        pending.push(buf.subarray(0, take));
        pendingBytes += take;
        buf = buf.subarray(take);
        if (pendingBytes === chunkSize) {
          await sendChunk(Buffer.concat(pending, pendingBytes));
          pending = [];
          pendingBytes = 0;
        }
      }
    }
    if (pendingBytes > 0) await sendChunk(Buffer.concat(pending, pendingBytes));
  }
  if (offset !== size) {
    throw new InvalidContentError(`blob source gave ${offset} bytes, announced ${size}`, { ref: ref.toString(), digest });
  }
  return location;
}

/** The final PUT ?digest=, with the whole blob (monolithic) or nothing (after chunks). */
async function putUpload(
  transport: RegistryTransport,
  ref: Reference,
  location: string,
  digest: string,
  opts: CallOptions,
  body: Buffer | Readable | AsyncIterable<Uint8Array> | undefined,
  size: number,
): Promise<void> {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  const headers: Record<string, string> = { 'content-length': String(body === undefined ? 0 : size) };
  if (body !== undefined) headers['content-type'] = 'application/octet-stream';
  const req: RegistryRequest = {
    ref,
    method: 'PUT',
    path: url.toString(),
    headers,
    scopes: pushScopes(ref),
    what: 'blob upload',
    digest,
    signal: opts.signal,
    timeoutMs: opts.timeoutMs,
    accept: (s) => s === 201 || s === 204,
  };
  if (body !== undefined) req.body = Buffer.isBuffer(body) ? body : (body as Readable);
  await transport.execute(req, async (res) => {
    await discard(res.body);
    const stored = headerValue(res.headers, 'docker-content-digest');
    if (stored !== undefined && stored !== digest) {
      throw new DigestMismatchError('registry stored the blob under another digest', digest, stored, transport.errorInit(req, res.url, res.status));
    }
  });
}

/**
 * PUTs a manifest or index under the reference's tag (or digest, if the
 * reference has one or byDigest is set). Returns its descriptor.
 */
export async function pushManifest(
  transport: RegistryTransport,
  ref: Reference,
  manifest: Uint8Array | object,
  opts: PushManifestOptions = {},
): Promise<Descriptor> {
  const raw = manifest instanceof Uint8Array ? Buffer.from(manifest.buffer, manifest.byteOffset, manifest.byteLength) : Buffer.from(JSON.stringify(manifest));
  const digest = digestOf(raw);
  const init = { ref: ref.toString(), digest };
  // Parse before sending: a registry would refuse a malformed document with
  // a less helpful MANIFEST_INVALID, and we need the media type anyway.
  const document = parseManifestDocument(raw, opts.mediaType, init);
  const mediaType = opts.mediaType ?? document.mediaType;
  if (ref.digest !== undefined && ref.digest !== digest) {
    throw new DigestMismatchError('manifest does not match the reference digest', ref.digest, digest, init);
  }
  const target = opts.byDigest || ref.digest !== undefined || ref.tag === undefined ? digest : ref.tag;
  const req: RegistryRequest = {
    ref,
    method: 'PUT',
    path: `/v2/${ref.repository}/manifests/${target}`,
    headers: { 'content-type': mediaType, 'content-length': String(raw.length) },
    body: raw,
    scopes: pushScopes(ref),
    what: 'manifest',
    digest,
    signal: opts.signal,
    timeoutMs: opts.timeoutMs,
    accept: (s) => s === 201 || s === 200 || s === 202,
  };
  await transport.execute(req, async (res) => {
    await discard(res.body);
    const stored = headerValue(res.headers, 'docker-content-digest');
    if (stored !== undefined && stored !== digest) {
      throw new DigestMismatchError('registry stored the manifest under another digest', digest, stored, transport.errorInit(req, res.url, res.status));
    }
  });
  return { mediaType, digest, size: raw.length };
}
