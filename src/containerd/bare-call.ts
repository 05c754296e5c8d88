/**
 * One unary gRPC call to containerd over node:http2, with the messages
 * encoded by hand: for the first calls `lazysnap pull` makes, before (or
 * instead of) loading grpc-js and the protobuf definitions, which takes some
 * 90 ms. The wire format is gRPC's own: an HTTP/2 POST of
 * `application/grpc`, each message behind a 5-byte frame header, the status
 * in the trailers (or, for a trailers-only answer, in the headers).
 */
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { connect as connectSocket } from 'node:net';
import { PeerUnreachableError } from './errors.js';

const GRPC_OK = 0;
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;

/** containerd answered with a status other than OK; code and message as grpc-js would report them. */
export class ContainerdAnswerError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
    /** What the call was for, in words ("the reachability check"). */
    what: string,
  ) {
    super(`containerd answered ${what} with gRPC status ${code}: ${details}`);
    this.name = 'ContainerdAnswerError';
  }
}

/** A protobuf message in a gRPC frame: flag 0 (uncompressed), 4-byte big-endian length, the message. */
export function grpcFrame(message: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
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

export interface BareCall {
  /** containerd's socket. */
  address: string;
  namespace: string;
  /** `/package.Service/Method` */
  path: string;
  /** The request message, protobuf-encoded (not framed). */
  message: Buffer;
  timeoutMs: number;
  /** For error messages: what the call is for. */
  what: string;
}

/**
 * Resolves with the answer's message (protobuf, frame header removed; empty
 * for an empty message). Rejects with PeerUnreachableError when containerd
 * cannot be reached or does not answer in time, ContainerdAnswerError when
 * it answers with an error.
 */
export function bareUnaryCall(call: BareCall): Promise<Buffer> {
  const { address, timeoutMs } = call;
  return new Promise<Buffer>((resolve, reject) => {
    let session: ClientHttp2Session | undefined;
    let settled = false;
    const received: Buffer[] = [];
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session?.destroy();
      if (err) reject(err);
      else resolve(messageOf(Buffer.concat(received)));
    };
    const settle = (status: { code: number; details: string }): void =>
      finish(status.code === GRPC_OK ? undefined : new ContainerdAnswerError(status.code, status.details, call.what));
    const unreachable = (err: Error): void => finish(new PeerUnreachableError('containerd', address, GRPC_UNAVAILABLE, { cause: err, detail: err.message }));
    const timer = setTimeout(() => {
      const detail = `no answer within ${timeoutMs / 1000} s`;
      finish(new PeerUnreachableError('containerd', address, GRPC_DEADLINE_EXCEEDED, { cause: new Error(detail), detail }));
    }, timeoutMs);
    session = connect('http://localhost', { createConnection: () => connectSocket(address) });
    session.on('error', unreachable);
    const stream = session.request({
      ':method': 'POST',
      ':path': call.path,
      'content-type': 'application/grpc',
      te: 'trailers',
      'containerd-namespace': call.namespace,
    });
    stream.on('error', unreachable);
    stream.on('data', (part: Buffer) => received.push(part));
    // A trailers-only answer (errors, mostly) carries the status in its headers.
    stream.on('response', (headers) => {
      const status = statusOf(headers);
      if (status) settle(status);
    });
    stream.on('trailers', (trailers) => settle(statusOf(trailers) ?? { code: GRPC_UNAVAILABLE, details: 'the answer had no gRPC status' }));
    stream.on('close', () => finish(new PeerUnreachableError('containerd', address, GRPC_UNAVAILABLE, { cause: new Error('stream closed'), detail: 'the connection closed before an answer' })));
    stream.end(grpcFrame(call.message));
  });
}

/** The first message of a unary answer, without its frame header. */
function messageOf(body: Buffer): Buffer {
  if (body.length < 5) return Buffer.alloc(0);
  const length = body.readUInt32BE(1);
  return body.subarray(5, 5 + length);
}
