/**
 * One `lazysnap pull`, run from a request: by the CLI itself, or by the
 * daemon for a CLI that handed the pull over (admin POST /pull). Both build
 * the registry and containerd clients from the request alone, so the same
 * request pulls the same way wherever it runs.
 */
import type { Logger } from 'pino';
import type { PullRequestBody, PullSummary } from '../admin/pull-model.js';
import { loadConfigWithSource } from '../config/index.js';
import { ContainerdConnection } from '../containerd/connection.js';
import { pullImage, type ProgressSink, type PullDeps } from '../pull/index.js';
import { DockerConfigCredentials, RegistryClient } from '../registry/index.js';
import { parsePlatform } from '../registry/platform.js';
import { registryOptions } from './registry-options.js';

/** flights, remoteFlights: shared by the pulls of one process (the daemon), so a layer is fetched, and checked remotely, once. */
export interface PullRun extends Pick<PullDeps, 'flights' | 'remoteFlights' | 'onImageResolved'> {
  request: PullRequestBody;
  remoteSnapshot: boolean;
  progress: ProgressSink;
  logger: Logger;
}

export async function runPull(run: PullRun): Promise<PullSummary> {
  const { request, logger } = run;
  const platform = request.platform === undefined ? undefined : parsePlatform(request.platform);
  const { config } = await loadConfigWithSource(request.config, { registry: { configPath: request.hostsDir } });
  const connection = new ContainerdConnection({ address: request.containerd.address, namespace: request.containerd.namespace });
  try {
    const host = request.ref.split('/')[0] ?? '';
    const registry = new RegistryClient({
      ...registryOptions(config, logger, request.plainHttp ? [host] : [], request.proxy),
      ...(platform ? { platform } : {}),
      credentials: new DockerConfigCredentials({ path: request.dockerConfig, onWarning: (message: string) => logger.warn(message) }),
      logger,
    });
    const started = Date.now();
    try {
      const result = await pullImage(
        { ref: request.ref, remoteSnapshot: run.remoteSnapshot, snapshotter: request.snapshotter, ...(request.platform ? { platform: request.platform } : {}) },
        {
          registry,
          connection,
          progress: run.progress,
          logger,
          ...(run.flights ? { flights: run.flights } : {}),
          ...(run.remoteFlights ? { remoteFlights: run.remoteFlights } : {}),
          ...(run.onImageResolved ? { onImageResolved: run.onImageResolved } : {}),
        },
      );
      return {
        name: result.name,
        digest: result.target.digest,
        layers: result.layers.length,
        remote: result.layers.filter((l) => l.outcome === 'remote').length,
        downloaded: result.layers.filter((l) => l.outcome === 'download').length,
        bytesDownloaded: result.bytesDownloaded,
        seconds: (Date.now() - started) / 1000,
      };
    } finally {
      await registry.close();
    }
  } finally {
    connection.close();
  }
}
