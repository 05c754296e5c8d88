/**
 * A peer that cannot be reached, said in words. Both keep gRPC's status code
 * (UNAVAILABLE, or DEADLINE_EXCEEDED for a peer that never answered) so code
 * that branches on codes sees what it saw before.
 */

/** containerd itself (or, for a direct connection, the snapshotter's socket) does not answer. */
export class PeerUnreachableError extends Error {
  constructor(
    readonly peer: 'containerd' | 'snapshotter',
    readonly address: string,
    readonly code: number,
    options: { cause: unknown; detail?: string },
  ) {
    const hint = peer === 'containerd' ? 'is containerd running?' : 'is `lazysnap serve` running?';
    super(`cannot reach ${peer} at ${address}: ${options.detail ?? detailOf(options.cause)}; ${hint}`, { cause: options.cause });
    this.name = 'PeerUnreachableError';
  }
}

/**
 * containerd answers but cannot dial the proxy snapshotter a call was routed
 * to: the daemon is not running, or has not bound its socket yet, or
 * containerd is still in its redial backoff (up to ~3 s) after it appeared.
 */
export class SnapshotterUnreachableError extends Error {
  constructor(
    readonly snapshotter: string,
    readonly socket: string | undefined,
    readonly code: number,
    readonly waitedMs: number,
    options: { cause: unknown },
  ) {
    super(
      `containerd cannot reach snapshotter ${snapshotter}${socket ? ` at ${socket}` : ''} (still failing after ${(waitedMs / 1000).toFixed(1)} s: ` +
        `${detailOf(options.cause)}); is \`lazysnap serve\` running?`,
      options,
    );
    this.name = 'SnapshotterUnreachableError';
  }
}

function detailOf(err: unknown): string {
  const details = (err as { details?: unknown } | null)?.details;
  const text = typeof details === 'string' ? details : err instanceof Error ? err.message : String(err);
  // grpc-js appends an empty "Resolution note: " to connection failures.
  return text.replace(/\.?\s*Resolution note:\s*$/, '');
}
