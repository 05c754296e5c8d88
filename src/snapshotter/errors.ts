/**
 * Typed errors of the snapshotter, one class per containerd errdefs kind.
 * Every message names the snapshot key it is about; the gRPC layer maps the
 * class to a status code in exactly one place (grpc/status.ts).
 */
export type ErrorKind = 'NotFound' | 'AlreadyExists' | 'FailedPrecondition' | 'InvalidArgument' | 'Unavailable' | 'Internal';

export abstract class SnapshotterError extends Error {
  abstract readonly kind: ErrorKind;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class NotFoundError extends SnapshotterError {
  readonly kind = 'NotFound';
}

export class AlreadyExistsError extends SnapshotterError {
  readonly kind = 'AlreadyExists';
}

export class FailedPreconditionError extends SnapshotterError {
  readonly kind = 'FailedPrecondition';
}

export class InvalidArgumentError extends SnapshotterError {
  readonly kind = 'InvalidArgument';
}

export class UnavailableError extends SnapshotterError {
  readonly kind = 'Unavailable';
}

export class InternalError extends SnapshotterError {
  readonly kind = 'Internal';
}
