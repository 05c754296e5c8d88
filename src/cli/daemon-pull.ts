/**
 * The daemon's side of a `lazysnap pull --remote-snapshot` the CLI handed
 * over (admin POST /pull, see admin/pull-model.ts): the pull runs here, in a
 * process whose gRPC and registry code is already loaded and compiled, and
 * its progress and log lines go back to the CLI as events. The daemon's own
 * log records each pull and its outcome.
 */
import { realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import type { PullEvent, PullRequestBody } from '../admin/pull-model.js';
import { warmUpPullPath, type LayerOutcome, type ProgressSink } from '../pull/index.js';
import type { LayerState } from '../pull/progress.js';
import { preloadContainerdClients } from '../containerd/connection.js';
import { lookupSnapshotterPlugin, usableProxyAddress } from '../containerd/proxy-plugin.js';
import type { ImageToOpen, RemoteMounter } from '../snapshotter/remote/remote-mounter.js';
import { SingleFlight } from '../sync/index.js';
import { runPull } from './pull-runner.js';

/** Byte counts of a download in progress are sent at most this often per layer; the CLI prints fewer still. */
const DOWNLOAD_EVENT_INTERVAL_MS = 200;

export class DaemonPulls {
  // Shared by every pull this daemon runs: racing pulls of one image fetch and check each layer once.
  private readonly flights = new SingleFlight<number>();
  private readonly remoteFlights = new SingleFlight<LayerOutcome | 'missing'>();
  /** Pulls handed over so far: the warm-up gives way once the first has come. */
  private handedOver = 0;

  /**
   * mounter: this daemon's remote side, told each image as soon as its pull
   * has the manifest; snapshotsSocket: the daemon's own, for the warm-up's gRPC call.
   */
  constructor(
    private readonly logger: Logger,
    private readonly mounter?: RemoteMounter,
    private readonly snapshotsSocket?: string,
  ) {}

  /**
   * Readies what the first pull needs, in the background after start-up:
   * containerd's client definitions, then the registry half of a pull on a
   * made-up image (see pull/warm-up.ts).
   */
  warmUp(): void {
    const busy = (): boolean => this.handedOver > 0;
    preloadContainerdClients()
      .then(() => warmUpPullPath({ busy, ...(this.snapshotsSocket !== undefined ? { snapshotsSocket: this.snapshotsSocket } : {}) }))
      .then(
        (result) => this.logger.debug({ ms: Math.round(result.ms), steps: result.steps, ...(result.stoppedAt ? { stoppedAt: result.stoppedAt } : {}) }, 'pull path warmed up'),
        (err: unknown) => this.logger.warn({ err }, 'warming up the pull path failed; the first pull handed over may be slower'),
      );
  }

  /**
   * For a pull that found this daemon by its advertised socket: why it is not
   * the snapshotter the pull names in that containerd, or undefined when it
   * is. containerd is asked as `lazysnap pull` would have asked it; a
   * containerd that does not answer is a reason too (the CLI then asks it
   * itself, and reports what is wrong in its own words).
   */
  async refusal(request: PullRequestBody): Promise<string | undefined> {
    const { address, namespace } = request.containerd;
    const name = request.snapshotter;
    let plugin: Awaited<ReturnType<typeof lookupSnapshotterPlugin>>;
    try {
      plugin = await lookupSnapshotterPlugin(address, namespace, name);
    } catch (err) {
      return `asking containerd at ${address} which socket serves snapshotter ${name} failed: ${err instanceof Error ? err.message : String(err)}`;
    }
    // The same rule `lazysnap pull` applies when it asks containerd itself.
    const served = usableProxyAddress(plugin);
    if (served === undefined) {
      return plugin?.failed ? `containerd at ${address} could not start snapshotter ${name}` : `containerd at ${address} has no proxy snapshotter named ${name}`;
    }
    if (this.snapshotsSocket === undefined || !(await sameFile(served, this.snapshotsSocket))) {
      return `snapshotter ${name} of containerd at ${address} is served at ${served}, not by this daemon`;
    }
    return undefined;
  }

  async run(request: PullRequestBody, send: (event: PullEvent) => void): Promise<void> {
    this.handedOver++;
    const started = performance.now();
    const context = { ref: request.ref, namespace: request.containerd.namespace, snapshotter: request.snapshotter };
    this.logger.info(context, 'pull handed over by lazysnap pull');
    // The pull's own log lines are the CLI's (its --log-level), as if it had run there.
    const cliLogger = pino({ level: request.logLevel, base: { command: 'pull' } }, { write: (line: string) => send({ log: line.trimEnd() }) });
    try {
      const summary = await runPull({
        request,
        remoteSnapshot: true,
        progress: progressEvents(send),
        logger: cliLogger,
        flights: this.flights,
        remoteFlights: this.remoteFlights,
        // The layers open while the config is fetched and the first Prepare travels through containerd.
        ...(this.mounter ? { onImageResolved: (image: ImageToOpen) => this.mounter?.openImage(image) } : {}),
      });
      this.logger.info({ ...context, ms: Math.round(performance.now() - started), layers: summary.layers, remote: summary.remote, downloaded: summary.downloaded }, 'pull done');
      send({ done: summary });
    } catch (err) {
      this.logger.warn({ ...context, err, ms: Math.round(performance.now() - started) }, 'pull failed');
      throw err;
    }
  }
}

/** Two spellings of one socket path (relative, through symlinks) are one socket. */
async function sameFile(a: string, b: string): Promise<boolean> {
  const canonical = (path: string): Promise<string> => realpath(path).catch(() => resolve(path));
  return (await canonical(a)) === (await canonical(b));
}

function progressEvents(send: (event: PullEvent) => void): ProgressSink {
  const lastSent = new Map<string, number>();
  return {
    layer(digest: string, state: LayerState, done = 0, total = 0) {
      if (state === 'downloading' && done < total) {
        const now = performance.now();
        if (now - (lastSent.get(digest) ?? 0) < DOWNLOAD_EVENT_INTERVAL_MS) return;
        lastSent.set(digest, now);
      }
      send({ layer: { digest, state, done, total } });
    },
    message: (text: string) => send({ message: text }),
    finish: () => {},
  };
}
