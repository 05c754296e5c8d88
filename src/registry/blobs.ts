// Reading blobs: whole (verified), streamed (verified as it flows), by byte
// range (what lazy layers live on), and their size.
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { VerifyingStream, assertDigest, verifyDigest } from './digest.js';
import { InvalidContentError, RegistryError, ShortReadError, type RegistryErrorInit } from './errors.js';
import type { Reference } from './reference.js';
import { ScopeSet } from './auth.js';
import type { HostCapability } from './hosts/hosts-file.js';
import { discard, headerValue, type RegistryRequest, type RegistryTransport } from './transport.js';

export interface CallOptions {
  signal?: AbortSignal | undefined;
  /** Overrides the transport's requestMs deadline for this call. */
  timeoutMs?: number | undefined;
}

export interface FetchBlobOptions extends CallOptions {
  /** Refuse blobs larger than this; default 64 MiB (whole-blob reads are for configs and small files). */
  maxBytes?: number;
  /** Expected size from the descriptor; checked. */
  size?: number;
}

export interface BlobStream {
  /** From Content-Length, when the registry sent one. */
  size: number | undefined;
  /** Errors with DigestMismatchError or ShortReadError at the end if the content is wrong. */
  stream: Readable;
}

const DEFAULT_MAX_BLOB_BYTES = 64 * 1024 * 1024;

export function pullScope(ref: Reference): string[] {
  return [ScopeSet.repository(ref.repository, ['pull'])];
}

function blobRequest(ref: Reference, digest: string, method: 'GET' | 'HEAD', what: string, opts: CallOptions): RegistryRequest {
  assertDigest(digest, { ref: ref.toString(), digest });
  return {
    ref,
    method,
    path: `/v2/${ref.repository}/blobs/${digest}`,
    scopes: pullScope(ref),
    what,
    digest,
    signal: opts.signal,
    timeoutMs: opts.timeoutMs,
  };
}

export async function fetchBlob(transport: RegistryTransport, ref: Reference, digest: string, opts: FetchBlobOptions = {}): Promise<Buffer> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BLOB_BYTES;
  if (opts.size !== undefined && opts.size > maxBytes) {
    throw new InvalidContentError(`blob of ${opts.size} bytes exceeds the ${maxBytes}-byte limit for whole reads`, { ref: ref.toString(), digest });
  }
  const req = blobRequest(ref, digest, 'GET', 'blob', opts);
  const { data } = await transport.fetchBuffer(req, maxBytes);
  const init = transport.errorInit(req);
  if (opts.size !== undefined && data.length !== opts.size) {
    throw new InvalidContentError(`blob is ${data.length} bytes, descriptor says ${opts.size}`, init);
  }
  verifyDigest(data, digest, 'blob', init);
  return data;
}

export async function openBlob(
  transport: RegistryTransport,
  ref: Reference,
  digest: string,
  opts: CallOptions & { size?: number } = {},
): Promise<BlobStream> {
  const req = blobRequest(ref, digest, 'GET', 'blob', opts);
  return transport.execute(req, async (res) => {
    const lengthHeader = headerValue(res.headers, 'content-length');
    const size = lengthHeader !== undefined && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : undefined;
    const init = transport.errorInit(req, res.url, res.status);
    if (opts.size !== undefined && size !== undefined && size !== opts.size) {
      await discard(res.body);
      throw new InvalidContentError(`blob is ${size} bytes, descriptor says ${opts.size}`, init);
    }
    const verifier = new VerifyingStream(digest, opts.size ?? size, init);
    // pipeline() propagates errors both ways: a consumer that destroys the
    // stream also releases the connection.
    pipeline(res.body, verifier, () => {});
    return { size: opts.size ?? size, stream: verifier };
  });
}

/**
 * Exactly `length` bytes of a blob from `offset`. Registries answer a Range
 * GET with 206, but some (and some storage backends behind redirects) ignore
 * Range and send the whole blob with 200: then the wanted window is cut out
 * of the stream and the rest is not downloaded.
 */
export async function readRange(
  transport: RegistryTransport,
  ref: Reference,
  digest: string,
  offset: number,
  length: number,
  opts: CallOptions = {},
): Promise<Buffer> {
  const ctx = { ref: ref.toString(), digest };
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`readRange offset must be a non-negative integer, got ${offset} (${ref}@${digest})`);
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`readRange length must be a non-negative integer, got ${length} (${ref}@${digest})`);
  assertDigest(digest, ctx);
  if (length === 0) return Buffer.alloc(0);
  const end = offset + length - 1;
  const req: RegistryRequest = {
    ...blobRequest(ref, digest, 'GET', `blob range ${offset}-${end}`, opts),
    headers: { range: `bytes=${offset}-${end}` },
    accept: (s) => s === 200 || s === 206 || s === 416,
  };
  return transport.execute(req, async (res) => {
    const init = transport.errorInit(req, res.url, res.status);
    if (res.status === 416) {
      await discard(res.body);
      const total = parseContentRange(headerValue(res.headers, 'content-range'))?.total;
      throw new RegistryError(
        `range ${offset}-${end} of blob ${digest} in ${ref} is beyond its end${total !== undefined ? ` (size ${total})` : ''}`,
        { ...init, code: 'RANGE_NOT_SATISFIABLE' },
      );
    }
    let start = 0;
    let total: number | undefined;
    if (res.status === 206) {
      const cr = parseContentRange(headerValue(res.headers, 'content-range'));
      if (!cr) {
        await discard(res.body);
        throw new InvalidContentError(`206 response without a valid Content-Range for ${offset}-${end}`, init);
      }
      start = cr.start;
      total = cr.total;
      if (start > offset) {
        await discard(res.body);
        throw new InvalidContentError(`registry sent range from ${start}, asked from ${offset}`, init);
      }
    } else {
      const cl = headerValue(res.headers, 'content-length');
      if (cl !== undefined && /^\d+$/.test(cl)) total = Number(cl);
    }
    if (total !== undefined && offset + length > total) {
      await discard(res.body);
      throw new RegistryError(`range ${offset}-${end} of blob ${digest} in ${ref} is beyond its end (size ${total})`, {
        ...init,
        code: 'RANGE_NOT_SATISFIABLE',
      });
    }
    const cl = headerValue(res.headers, 'content-length');
    const bodyLength = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
    return sliceStream(res.body, offset - start, length, bodyLength, init);
  });
}

/** The last bytes of a blob and the blob's size, from one request. */
export interface BlobTail {
  data: Buffer;
  /** Size of the whole blob. */
  size: number;
}

/**
 * The last `length` bytes of a blob (all of it when it is shorter) together
 * with its size, in one suffix-range request (`Range: bytes=-N`). A lazy layer
 * opens from its tail (footer and TOC), so this saves the HEAD round trip that
 * learning the size first would cost when no manifest told it.
 */
export async function readTail(
  transport: RegistryTransport,
  ref: Reference,
  digest: string,
  length: number,
  opts: CallOptions = {},
): Promise<BlobTail> {
  if (!Number.isSafeInteger(length) || length <= 0) throw new RangeError(`readTail length must be a positive integer, got ${length} (${ref}@${digest})`);
  const req: RegistryRequest = {
    ...blobRequest(ref, digest, 'GET', `blob tail of ${length} bytes`, opts),
    headers: { range: `bytes=-${length}` },
    accept: (s) => s === 200 || s === 206 || s === 416,
  };
  return transport.execute(req, async (res) => {
    const init = transport.errorInit(req, res.url, res.status);
    const cl = headerValue(res.headers, 'content-length');
    const bodyLength = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
    if (res.status === 416) {
      // Only an empty blob has no suffix to give.
      await discard(res.body);
      throw new InvalidContentError(`blob ${digest} in ${ref} is empty`, init);
    }
    if (res.status === 206) {
      const cr = parseContentRange(headerValue(res.headers, 'content-range'));
      if (!cr || cr.total === undefined || cr.end !== cr.total - 1 || cr.total - cr.start !== Math.min(length, cr.total)) {
        await discard(res.body);
        throw new InvalidContentError(`206 response with Content-Range ${headerValue(res.headers, 'content-range') ?? '(none)'} does not answer a ${length}-byte suffix`, init);
      }
      return { data: await sliceStream(res.body, 0, cr.end - cr.start + 1, bodyLength, init), size: cr.total };
    }
    // 200: the range was ignored. Only a known length says where the tail starts.
    if (bodyLength === undefined) {
      await discard(res.body);
      throw new InvalidContentError('registry ignored the suffix range and sent no Content-Length', init);
    }
    const take = Math.min(length, bodyLength);
    return { data: await sliceStream(res.body, bodyLength - take, take, bodyLength, init), size: bodyLength };
  });
}

/** Past the wanted window, a body this small is drained (keeping the connection); a bigger one is cut off. */
const DRAIN_LIMIT = 64 * 1024;

/** Reads bytes [skip, skip+length) of a stream of `bodyLength` bytes (if known). */
async function sliceStream(body: Readable, skip: number, length: number, bodyLength: number | undefined, init: RegistryErrorInit): Promise<Buffer> {
  const out = Buffer.allocUnsafe(length);
  let pos = 0; // stream position
  let filled = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    const chunkEnd = pos + chunk.length;
    if (chunkEnd > skip && filled < length) {
      const from = Math.max(0, skip - pos);
      const take = Math.min(chunk.length - from, length - filled);
      chunk.copy(out, filled, from, from + take);
      filled += take;
    }
    pos = chunkEnd;
    // Leaving the loop early destroys the stream and undici drops that
    // connection: cheaper than downloading the rest of a whole blob, but
    // for the usual exact 206 reading to the end is what keeps it alive.
    if (filled === length && (bodyLength === undefined || bodyLength - pos > DRAIN_LIMIT)) break;
  }
  if (filled < length) {
    throw new ShortReadError(`read ${filled} of ${length} bytes at offset ${skip}: response ended early`, init);
  }
  return out;
}

export function parseContentRange(value: string | undefined): { start: number; end: number; total: number | undefined } | null {
  if (!value) return null;
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value);
  if (m) {
    const start = Number(m[1]);
    const end = Number(m[2]);
    if (end < start) return null;
    return { start, end, total: m[3] === '*' ? undefined : Number(m[3]) };
  }
  const unsatisfied = /^\s*bytes\s+\*\/(\d+)\s*$/i.exec(value);
  if (unsatisfied) return { start: 0, end: -1, total: Number(unsatisfied[1]) };
  return null;
}

/**
 * Size of a blob. HEAD first; some storage backends behind a redirect refuse
 * HEAD on a URL signed for GET, so a one-byte ranged GET is the fallback.
 */
export async function blobSize(transport: RegistryTransport, ref: Reference, digest: string, opts: CallOptions = {}): Promise<number> {
  const head = blobRequest(ref, digest, 'HEAD', 'blob', opts);
  try {
    const size = await transport.execute(head, async (res) => {
      await discard(res.body);
      const cl = headerValue(res.headers, 'content-length');
      return cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
    });
    if (size !== undefined) return size;
  } catch (err) {
    // Only a refusal from a storage host we were redirected to earns the
    // fallback; the registry's own 404 or 401 is the answer.
    const fromStorage =
      err instanceof RegistryError && err.status !== undefined && err.url !== undefined && err.host !== undefined && new URL(err.url).host !== err.host;
    if (!fromStorage) throw err;
  }
  const get: RegistryRequest = { ...blobRequest(ref, digest, 'GET', 'blob size', opts), headers: { range: 'bytes=0-0' } };
  return transport.execute(get, async (res) => {
    const init = transport.errorInit(get, res.url, res.status);
    await discard(res.body);
    if (res.status === 206) {
      const total = parseContentRange(headerValue(res.headers, 'content-range'))?.total;
      if (total !== undefined) return total;
    } else {
      const cl = headerValue(res.headers, 'content-length');
      if (cl !== undefined && /^\d+$/.test(cl)) return Number(cl);
    }
    throw new InvalidContentError('registry did not report the blob size', init);
  });
}

/** HEAD: does the repository have this blob? Undefined size when the registry omits it. */
export async function statBlob(
  transport: RegistryTransport,
  ref: Reference,
  digest: string,
  opts: CallOptions & { scopes?: string[]; capability?: HostCapability } = {},
): Promise<{ exists: boolean; size: number | undefined }> {
  const req: RegistryRequest = {
    ...blobRequest(ref, digest, 'HEAD', 'blob', opts),
    accept: (s) => (s >= 200 && s <= 299) || s === 404,
  };
  if (opts.scopes) req.scopes = opts.scopes;
  if (opts.capability) req.capability = opts.capability;
  return transport.execute(req, async (res) => {
    await discard(res.body);
    if (res.status === 404) return { exists: false, size: undefined };
    const cl = headerValue(res.headers, 'content-length');
    return { exists: true, size: cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined };
  });
}

