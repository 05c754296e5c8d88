/** A pull that failed, with the image ref and, where it applies, the layer digest. */
export class PullError extends Error {
  constructor(
    message: string,
    readonly ref: string,
    readonly digest?: string,
    options?: { cause?: unknown },
  ) {
    super(`pull ${ref}${digest ? ` layer ${digest}` : ''}: ${message}`, options);
    this.name = 'PullError';
  }
}
