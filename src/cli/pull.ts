/** `lazysnap pull`: builds the registry and containerd clients and runs a pull. */
import { loadConfigWithSource } from '../config/index.js';
import { checkContainerdAnswers } from '../containerd/reachability.js';
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
}

export async function pull(ref: string, flags: PullFlags): Promise<void> {
  const platform = flags.platform === undefined ? undefined : parsePlatform(flags.platform);
  const { config } = await loadConfigWithSource(flags.config, { registry: { configPath: hostsDirFlag(flags.hostsDir) } });
  // containerd is asked first whether it answers (when it does not, the user
  // hears so at once), over plain HTTP/2; the rest of the command (grpc-js,
  // the registry client's undici) loads while that call is out. Started the
  // other way round, the loading held the call back by ~130 ms.
  const reachable = checkContainerdAnswers(flags.address, flags.namespace);
  reachable.catch(() => {}); // awaited below
  const modules = Promise.all([
    import('../containerd/connection.js'), import('pino'), import('../registry/index.js'), import('../pull/index.js'), import('./registry-options.js'),
  ]);
  modules.catch(() => {}); // a load failure is reported below, once containerd answered
  await reachable;
  const [{ ContainerdConnection }, { default: pino }, { DockerConfigCredentials, RegistryClient }, { createProgress, pullImage }, { registryOptions }] = await modules;
  const connection = new ContainerdConnection({ address: flags.address, namespace: flags.namespace });
  try {
    const logger = pino({ level: flags.logLevel, base: { command: 'pull' } }, pino.destination(2));
    const host = ref.split('/')[0] ?? '';
    const registry = new RegistryClient({
      ...registryOptions(config, logger, flags.plainHttp ? [host] : []),
      ...(platform ? { platform } : {}),
      credentials: new DockerConfigCredentials({ onWarning: (message: string) => logger.warn(message) }),
      logger,
    });
    const progress = createProgress(process.stderr, flags.quiet);
    const started = Date.now();
    try {
      const result = await pullImage(
        { ref, remoteSnapshot: !!flags.remoteSnapshot, snapshotter: flags.snapshotter, ...(flags.platform ? { platform: flags.platform } : {}) },
        { registry, connection, progress, logger },
      );
      const remote = result.layers.filter((l) => l.outcome === 'remote').length;
      const downloaded = result.layers.filter((l) => l.outcome === 'download').length;
      process.stdout.write(
        `${result.name}: ${result.target.digest} (${result.layers.length} layers: ${remote} remote, ${downloaded} downloaded, ` +
          `${result.layers.length - remote - downloaded} already present; ${(result.bytesDownloaded / 1048576).toFixed(1)} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
      );
    } finally {
      await registry.close();
    }
  } finally {
    connection.close();
  }
}
