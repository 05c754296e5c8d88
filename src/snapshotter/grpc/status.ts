/**
 * The one place where errors become gRPC status codes. containerd's errdefs
 * turns these codes back into its own error kinds, so NotFound here is
 * errdefs.IsNotFound there.
 */
import { status as Status, Metadata, type ServiceError } from '@grpc/grpc-js';
import { SnapshotterError, type ErrorKind } from '../errors.js';

const CODES: Record<ErrorKind, Status> = {
  NotFound: Status.NOT_FOUND,
  AlreadyExists: Status.ALREADY_EXISTS,
  FailedPrecondition: Status.FAILED_PRECONDITION,
  InvalidArgument: Status.INVALID_ARGUMENT,
  Unavailable: Status.UNAVAILABLE,
  Internal: Status.INTERNAL,
};

/**
 * The message travels in an HTTP/2 trailer, whose size the peer bounds (16 KiB
 * by default); a message quoting a 32 KiB snapshot key would turn the answer
 * into a transport error. The full message stays in the daemon's log.
 */
export const MAX_DETAILS_LENGTH = 1024;

export function toServiceError(err: unknown): Partial<ServiceError> {
  if (err instanceof SnapshotterError) {
    return { code: CODES[err.kind], details: truncate(err.message), metadata: new Metadata() };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: Status.INTERNAL, details: truncate(message), metadata: new Metadata() };
}

function truncate(message: string): string {
  if (message.length <= MAX_DETAILS_LENGTH) return message;
  return `${message.slice(0, MAX_DETAILS_LENGTH)}... (${message.length - MAX_DETAILS_LENGTH} more characters)`;
}

export function statusName(code: Status | undefined): string {
  return code === undefined ? 'OK' : (Status[code] ?? String(code));
}
