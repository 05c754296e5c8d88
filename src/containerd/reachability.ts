/**
 * The first thing `lazysnap pull` does: ask containerd whether it answers,
 * with one cheap call (a Leases List matching nothing), so that a containerd
 * that is down or hung is reported at once, before any registry traffic.
 *
 * It is sent with node:http2 and a hand-encoded request rather than through
 * grpc-js: loading grpc-js and parsing the protobuf definitions takes some
 * 90 ms, and the rest of the command loads while this call is out. The wire
 * format is gRPC's own (HTTP/2 POST, `application/grpc`, a 5-byte frame
 * header, status in the trailers); the request is one protobuf field.
 */
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { connect as connectSocket } from 'node:net';
import { PeerUnreachableError } from './errors.js';

/** A reachability check answers in milliseconds; a peer that takes longer is hung. */
export const REACHABILITY_TIMEOUT_MS = 5_000;

const LEASES_LIST_PATH = '/containerd.services.leases.v1.Leases/List';
const FILTER = 'id==lazysnap-reachability-check';
const GRPC_OK = 0;
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;

/** An answer other than OK, with gRPC's code and message, as grpc-js would report it. */
export class ReachabilityCheckError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`containerd answered the reachability check with gRPC status ${code}: ${details}`);
    this.name = 'ReachabilityCheckError';
  }
}

/** leases.v1.ListRequest{filters: [filter]} (field 1, length-delimited) in a gRPC message frame. */
export function encodeLeasesListRequest(filter: string): Buffer {
  const text = Buffer.from(filter, 'utf8');
  if (text.length > 127) throw new RangeError('a filter this long needs a multi-byte length');
  const message = Buffer.concat([Buffer.from([0x0a, text.length]), text]);
  const frame = Buffer.alloc(5);
  frame.writeUInt32BE(message.length, 1);
  return Buffer.concat([frame, message]);
}

function statusOf(headers: IncomingHttpHeaders): { code: number; details: string } | undefined {
  const status = headers['grpc-status'];
  if (typeof status !== 'string') return undefined;
  const message = headers['grpc-message'];
  let details = typeof message === 'string' ? message : '';
  try {
    details = decodeURIComponent(details);
  } catch {
    // Not percent-encoded after all: keep it as sent.
  }
  return { code: Number(status), details };
}

/** Resolves when containerd at `address` answers; rejects with PeerUnreachableError when it cannot be reached or does not answer in time. */
export function checkContainerdAnswers(address: string, namespace: string, timeoutMs = REACHABILITY_TIMEOUT_MS): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let session: ClientHttp2Session | undefined;
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session?.destroy();
      if (err) reject(err);
      else resolve();
    };
    const unreachable = (err: Error): void => finish(new PeerUnreachableError('containerd', address, GRPC_UNAVAILABLE, { cause: err, detail: err.message }));
    const timer = setTimeout(() => {
      const detail = `no answer within ${timeoutMs / 1000} s`;
      finish(new PeerUnreachableError('containerd', address, GRPC_DEADLINE_EXCEEDED, { cause: new Error(detail), detail }));
    }, timeoutMs);
    session = connect('http://localhost', { createConnection: () => connectSocket(address) });
    session.on('error', unreachable);
    const stream = session.request({
      ':method': 'POST',
      ':path': LEASES_LIST_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      'containerd-namespace': namespace,
    });
    stream.on('error', unreachable);
    // A trailers-only answer (errors, mostly) carries the status in its headers.
    stream.on('response', (headers) => {
      const status = statusOf(headers);
      if (status) finish(status.code === GRPC_OK ? undefined : new ReachabilityCheckError(status.code, status.details));
    });
    stream.on('trailers', (trailers) => {
      const status = statusOf(trailers) ?? { code: GRPC_UNAVAILABLE, details: 'the answer had no gRPC status' };
      finish(status.code === GRPC_OK ? undefined : new ReachabilityCheckError(status.code, status.details));
    });
    stream.on('close', () => finish(new PeerUnreachableError('containerd', address, GRPC_UNAVAILABLE, { cause: new Error('stream closed'), detail: 'the connection closed before an answer' })));
    stream.resume(); // the leases listed (none) are of no interest
    stream.end(encodeLeasesListRequest(FILTER));
  });
}
