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

export function toServiceError(err: unknown): Partial<ServiceError> {
  if (err instanceof SnapshotterError) {
    return { code: CODES[err.kind], details: err.message, metadata: new Metadata() };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: Status.INTERNAL, details: message, metadata: new Metadata() };
}

export function statusName(code: Status | undefined): string {
  return code === undefined ? 'OK' : (Status[code] ?? String(code));
}
