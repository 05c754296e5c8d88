/**
 * `lazysnap pull --remote-snapshot` handed to the running daemon: what the
 * CLI sends (POST /pull on the admin socket) and the events it reads back,
 * one JSON object per line. The daemon is warm (grpc-js, the registry
 * client and their code already loaded and compiled), so the pull starts at
 * once instead of after a fresh process has loaded them.
 *
 * The request carries everything the pull depends on in the CLI's own
 * context (its config file and hosts directory, its Docker config.json, its
 * proxy environment, containerd's socket and namespace), so the daemon
 * pulls exactly what the CLI would have pulled.
 */
import type { ProxySettings } from '../registry/hosts/proxy-env.js';
import type { LayerState } from '../pull/progress.js';

export interface PullRequestBody {
  ref: string;
  containerd: { address: string; namespace: string };
  snapshotter: string;
  platform?: string;
  /** The registry host of ref is spoken to over plain HTTP (`--plain-http`). */
  plainHttp?: boolean;
  /** The CLI's `--config` as an absolute path; absent: the default file when present. */
  config?: string;
  /** `--hosts-dir`, absolute. */
  hostsDir?: string;
  /** The Docker config.json the CLI would read credentials from. */
  dockerConfig: string;
  /** HTTP(S)_PROXY / NO_PROXY from the CLI's environment. */
  proxy: ProxySettings;
  /** The CLI's `--log-level`: log lines at or above it are sent back as events. */
  logLevel: string;
  /**
   * The CLI found this daemon by its advertised socket (admin-directory.ts),
   * not by asking containerd: the daemon first checks with containerd that it
   * is the snapshotter named `snapshotter`, and refuses (409) when it is not.
   */
  verifySnapshotter?: boolean;
}

/** What `lazysnap pull` prints when it is done. */
export interface PullSummary {
  name: string;
  digest: string;
  layers: number;
  remote: number;
  downloaded: number;
  bytesDownloaded: number;
  seconds: number;
}

export type PullEvent =
  | { layer: { digest: string; state: LayerState; done: number; total: number } }
  | { message: string }
  /** A log line of the pull (pino's JSON), for the CLI's stderr. */
  | { log: string }
  | { done: PullSummary }
  | { error: { name: string; message: string } };

/** The one-line summary, the same whoever ran the pull. */
export function formatPullSummary(s: PullSummary): string {
  return `${s.name}: ${s.digest} (${s.layers} layers: ${s.remote} remote, ${s.downloaded} downloaded, ${s.layers - s.remote - s.downloaded} already present; ` +
    `${(s.bytesDownloaded / 1048576).toFixed(1)} MiB in ${s.seconds.toFixed(1)} s)`;
}

/** The request as the daemon receives it, checked field by field: a bad one is answered 400 with the reason. */
export function parsePullRequest(body: unknown): PullRequestBody {
  if (typeof body !== 'object' || body === null) throw new PullRequestError('the body is not a JSON object');
  const b = body as Record<string, unknown>;
  const text = (key: string, value: unknown = b[key]): string => {
    if (typeof value !== 'string' || value === '') throw new PullRequestError(`${key} must be a non-empty string`);
    return value;
  };
  const optionalText = (key: string): string | undefined => (b[key] === undefined ? undefined : text(key));
  const containerd = b.containerd as Record<string, unknown> | undefined;
  if (typeof containerd !== 'object' || containerd === null) throw new PullRequestError('containerd must be an object');
  const proxy = (b.proxy ?? {}) as Record<string, unknown>;
  const proxySetting = (key: string): string | undefined => {
    const value = proxy[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw new PullRequestError(`proxy.${key} must be a string`);
    return value;
  };
  const config = optionalText('config');
  const hostsDir = optionalText('hostsDir');
  for (const [key, path] of [['config', config], ['hostsDir', hostsDir], ['dockerConfig', b.dockerConfig]] as const) {
    if (typeof path === 'string' && !path.startsWith('/')) throw new PullRequestError(`${key} must be an absolute path`);
  }
  const platform = optionalText('platform');
  const httpProxy = proxySetting('httpProxy');
  const httpsProxy = proxySetting('httpsProxy');
  const noProxy = proxySetting('noProxy');
  return {
    ref: text('ref'),
    containerd: { address: text('containerd.address', containerd.address), namespace: text('containerd.namespace', containerd.namespace) },
    snapshotter: text('snapshotter'),
    ...(platform !== undefined ? { platform } : {}),
    plainHttp: b.plainHttp === true,
    ...(config !== undefined ? { config } : {}),
    ...(hostsDir !== undefined ? { hostsDir } : {}),
    dockerConfig: text('dockerConfig'),
    proxy: { ...(httpProxy !== undefined ? { httpProxy } : {}), ...(httpsProxy !== undefined ? { httpsProxy } : {}), ...(noProxy !== undefined ? { noProxy } : {}) },
    logLevel: text('logLevel'),
    ...(b.verifySnapshotter === true ? { verifySnapshotter: true } : {}),
  };
}

export class PullRequestError extends Error {
  constructor(message: string) {
    super(`bad pull request: ${message}`);
    this.name = 'PullRequestError';
  }
}
