/**
 * The first steps of a pull, run once right after the daemon starts, so
 * that the first `lazysnap pull` it is handed does not pay V8's first-use
 * costs (grpc-js's client side, undici's request path and llhttp, our
 * resolve and config code) on a container's critical path: measured in a
 * fresh daemon, resolve and lease took 43 ms on the first pull against 10 ms
 * on the next.
 *
 * One gRPC call through a client like a pull's goes to a snapshotter socket
 * (the daemon's own: a Stat of a key that does not exist). A throwaway HTTP
 * server on 127.0.0.1 serves a made-up image (manifest and config); a
 * registry client like a pull's resolves it and fetches its config. Nothing
 * is kept. It stops before its next step once real work has come (`busy`).
 */
import type { AddressInfo } from 'node:net';
import { lookupSnapshotterPlugin } from '../containerd/proxy-plugin.js';
import { SnapshotsClient } from '../containerd/snapshots-client.js';
import { MediaType, RegistryClient, digestOf, noopLogger } from '../registry/index.js';
import { serveImageOnLoopback } from '../registry/loopback-image.js';

export interface PullWarmUpResult {
  /** Steps run to the end, in order. */
  steps: string[];
  /** Set when it stopped early because real work arrived. */
  stoppedAt?: string;
  ms: number;
}

/** An image of no layers: a config and the manifest that names it. */
function madeUpImage(): { manifest: Buffer; config: Buffer; configDigest: string } {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} }));
  const configDigest = digestOf(config);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: configDigest, size: config.length }, layers: [] }));
  return { manifest, config, configDigest };
}

export interface PullWarmUpOptions {
  /** True once real work waits: the warm-up stops before its next step. */
  busy: () => boolean;
  /** A Snapshots API socket to send the gRPC call to (the daemon's own); none: that step is skipped. */
  snapshotsSocket?: string;
}

export async function warmUpPullPath(options: PullWarmUpOptions): Promise<PullWarmUpResult> {
  const started = performance.now();
  const steps: string[] = [];
  const stopped = (): PullWarmUpResult => ({ steps, stoppedAt: steps.length === 0 ? 'start' : `after ${steps[steps.length - 1]}`, ms: performance.now() - started });
  if (options.busy()) return stopped();
  if (options.snapshotsSocket !== undefined) {
    const snapshots = new SnapshotsClient({ address: options.snapshotsSocket, timeoutMs: 5_000 });
    try {
      await snapshots.statIfExists('lazysnap-pull-warm-up');
    } finally {
      snapshots.close();
    }
    steps.push('grpc');
    if (options.busy()) return stopped();
    // The check a pull that found the daemon by its advertised socket starts with (DaemonPulls.refusal):
    // this socket serves no Introspection, so the answer is an error, but the HTTP/2 client has run once.
    await lookupSnapshotterPlugin(options.snapshotsSocket, 'default', 'lazysnap-pull-warm-up').catch(() => undefined);
    steps.push('plugin lookup');
    if (options.busy()) return stopped();
  }
  const image = madeUpImage();
  const server = await serveImageOnLoopback(image.manifest, image.config, image.configDigest);
  // No credentials, no proxy, no hosts.toml: only this loopback server is ever asked. Its requests are not the log's business.
  const registry = new RegistryClient({ retry: { maxAttempts: 1 }, logger: noopLogger });
  try {
    const ref = `127.0.0.1:${(server.address() as AddressInfo).port}/lazysnap/pull-warm-up:latest`;
    const resolved = await registry.resolve(ref);
    steps.push('resolve');
    if (options.busy()) return stopped();
    await registry.getConfig(ref, resolved.manifest);
    steps.push('config');
    return { steps, ms: performance.now() - started };
  } finally {
    await registry.close().catch(() => undefined);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
