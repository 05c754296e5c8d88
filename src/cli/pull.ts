/**
 * `lazysnap pull`. With --remote-snapshot and a lazysnap daemon behind
 * --snapshotter, the pull is handed to that daemon over its admin socket:
 * it is warm, so the pull starts at once, while this process needs only
 * node:http. The daemon is found by the socket it advertised (it checks with
 * containerd that it is the snapshotter named), else by asking containerd
 * where that snapshotter listens. Otherwise (no such daemon, an older one,
 * not root, --no-daemon, or a pull without --remote-snapshot) this process
 * builds the registry and containerd clients and pulls.
 */
import { resolve } from 'node:path';
import { adminDirectory, advertisedAdminSockets } from '../admin/admin-directory.js';
import { adminSocketPath } from '../admin/admin-server.js';
import { DaemonCannotPullError, requestPull } from '../admin/pull-client.js';
import { formatPullSummary, type PullEvent, type PullRequestBody, type PullSummary } from '../admin/pull-model.js';
import { createProgress, type ProgressSink } from '../pull/progress.js';
import { defaultDockerConfigPath } from '../registry/docker-config-path.js';
import { proxySettingsFromEnv } from '../registry/hosts/proxy-env.js';
import { parsePlatform } from '../registry/platform.js';
import { hostsDirFlag } from './registry-host-flag.js';

export interface PullFlags {
  remoteSnapshot?: boolean;
  snapshotter: string;
  plainHttp?: boolean;
  platform?: string;
  namespace: string;
  address: string;
  quiet?: boolean;
  logLevel: string;
  /** Same file as `serve` reads; its [registry] section applies. */
  config?: string;
  /** Overrides [registry] config_path, as `ctr --hosts-dir`. */
  hostsDir?: string;
  /** --no-daemon: false. */
  daemon?: boolean;
}

export async function pull(ref: string, flags: PullFlags): Promise<void> {
  // A bad platform is reported before anything is asked of anyone.
  if (flags.platform !== undefined) parsePlatform(flags.platform);
  const request = pullRequest(ref, flags);
  const progress = createProgress(process.stderr, flags.quiet);
  if (flags.remoteSnapshot && flags.daemon !== false) {
    const summary = (await pullInAdvertisedDaemon(request, flags, progress)) ?? (await pullInNamedDaemon(request, flags, progress));
    if (summary !== undefined) return printSummary(summary, progress);
    return pullHere(request, flags, progress, Promise.resolve());
  }
  // containerd is asked first whether it answers (when it does not, the user
  // hears so at once), over plain HTTP/2; the rest of the command (grpc-js,
  // the registry client's undici) loads while that call is out. Started the
  // other way round, the loading held the call back by ~130 ms.
  const { checkContainerdAnswers } = await import('../containerd/reachability.js');
  return pullHere(request, flags, progress, checkContainerdAnswers(flags.address, flags.namespace));
}

/**
 * Hands the pull to a daemon that advertised its admin socket, if one is the
 * snapshotter the pull names (each checks that with containerd and refuses
 * otherwise). Undefined when none took it: the caller asks containerd.
 */
async function pullInAdvertisedDaemon(request: PullRequestBody, flags: PullFlags, progress: ProgressSink): Promise<PullSummary | undefined> {
  for (const socket of await advertisedAdminSockets(adminDirectory())) {
    try {
      return await handOver(socket, { ...request, verifySnapshotter: true }, progress);
    } catch (err) {
      if (!(err instanceof DaemonCannotPullError)) throw err;
      if (flags.logLevel === 'debug') process.stderr.write(`${err.message}\n`);
    }
  }
  return undefined;
}

/**
 * Hands the pull to the daemon containerd names as the proxy snapshotter
 * `--snapshotter`. Also the check that containerd answers: a containerd that
 * is down is reported here, at once; one that answers with an error (a
 * namespace it refuses, say) is left to the pull in this process to report.
 * Undefined when there is no such daemon or it cannot take the pull.
 */
async function pullInNamedDaemon(request: PullRequestBody, flags: PullFlags, progress: ProgressSink): Promise<PullSummary | undefined> {
  const [{ lookupSnapshotterPlugin, usableProxyAddress }, { ContainerdAnswerError }] = await Promise.all([import('../containerd/proxy-plugin.js'), import('../containerd/bare-call.js')]);
  const plugin = await lookupSnapshotterPlugin(flags.address, flags.namespace, flags.snapshotter).catch((err: unknown) => {
    if (err instanceof ContainerdAnswerError) return undefined;
    throw err;
  });
  const address = usableProxyAddress(plugin);
  if (address === undefined) return undefined;
  try {
    return await handOver(adminSocketPath(address), request, progress);
  } catch (err) {
    if (!(err instanceof DaemonCannotPullError)) throw err;
    if (flags.logLevel === 'debug' || flags.logLevel === 'info') process.stderr.write(`${err.message}; pulling in this process\n`);
    return undefined;
  }
}

/** The pull run by the daemon at `socket`, its progress shown here. */
async function handOver(socket: string, request: PullRequestBody, progress: ProgressSink): Promise<PullSummary> {
  return requestPull(socket, request, (event) => showEvent(event, progress));
}

function printSummary(summary: PullSummary, progress: ProgressSink): void {
  progress.finish();
  process.stdout.write(`${formatPullSummary(summary)}\n`);
}

/** The pull as this process's context defines it: paths made absolute, credentials and proxies from here. */
function pullRequest(ref: string, flags: PullFlags): PullRequestBody {
  const hostsDir = hostsDirFlag(flags.hostsDir);
  return {
    ref,
    containerd: { address: resolve(flags.address), namespace: flags.namespace },
    snapshotter: flags.snapshotter,
    ...(flags.platform !== undefined ? { platform: flags.platform } : {}),
    plainHttp: flags.plainHttp === true,
    ...(flags.config !== undefined ? { config: resolve(flags.config) } : {}),
    ...(hostsDir !== undefined ? { hostsDir } : {}),
    dockerConfig: resolve(defaultDockerConfigPath()),
    proxy: proxySettingsFromEnv(process.env),
    logLevel: flags.logLevel,
  };
}

function showEvent(event: PullEvent, progress: ProgressSink): void {
  if ('layer' in event) progress.layer(event.layer.digest, event.layer.state, event.layer.done, event.layer.total);
  else if ('message' in event) progress.message(event.message);
  else if ('log' in event) process.stderr.write(`${event.log}\n`);
}

async function pullHere(request: PullRequestBody, flags: PullFlags, progress: ProgressSink, reachable: Promise<void>): Promise<void> {
  reachable.catch(() => {}); // awaited below
  const modules = Promise.all([import('pino'), import('./pull-runner.js')]);
  modules.catch(() => {}); // a load failure is reported below, once containerd answered
  await reachable;
  const [{ default: pino }, { runPull }] = await modules;
  const logger = pino({ level: flags.logLevel, base: { command: 'pull' } }, pino.destination(2));
  printSummary(await runPull({ request, remoteSnapshot: !!flags.remoteSnapshot, progress, logger }), progress);
}
