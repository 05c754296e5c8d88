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
import { bareUnaryCall, ContainerdAnswerError, grpcFrame } from './bare-call.js';
import { stringField } from './protobuf-wire.js';

/** A reachability check answers in milliseconds; a peer that takes longer is hung. */
export const REACHABILITY_TIMEOUT_MS = 5_000;

const LEASES_LIST_PATH = '/containerd.services.leases.v1.Leases/List';
const FILTER = 'id==lazysnap-reachability-check';

/** An answer other than OK to the reachability check. */
export { ContainerdAnswerError as ReachabilityCheckError };

/** leases.v1.ListRequest{filters: [filter]} (field 1, length-delimited) in a gRPC message frame. */
export function encodeLeasesListRequest(filter: string): Buffer {
  return grpcFrame(leasesListRequest(filter));
}

function leasesListRequest(filter: string): Buffer {
  return stringField(1, filter);
}

/** Resolves when containerd at `address` answers; rejects with PeerUnreachableError when it cannot be reached or does not answer in time. */
export async function checkContainerdAnswers(address: string, namespace: string, timeoutMs = REACHABILITY_TIMEOUT_MS): Promise<void> {
  // The leases listed (none) are of no interest.
  await bareUnaryCall({ address, namespace, path: LEASES_LIST_PATH, message: leasesListRequest(FILTER), timeoutMs, what: 'the reachability check' });
}
