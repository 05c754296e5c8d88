// A real containerd 1.6 (Debian's) on a private socket, root and state
// under a temp dir, with lazysnap configured as a proxy snapshotter.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ManagedProcess, waitUntil } from './process.js';

const execFileAsync = promisify(execFile);

export interface ContainerdInstance {
  socket: string;
  root: string;
  state: string;
  namespace: string;
  process: ManagedProcess;
  /** Runs ctr against this containerd; resolves with stdout, rejects with stderr in the message. */
  ctr(args: string[], options?: { timeoutMs?: number }): Promise<string>;
  /**
   * Waits until containerd reaches lazysnap again after a daemon restart:
   * a call it made while the socket was gone leaves its connection in gRPC's
   * reconnect backoff, and calls meanwhile fail at once (Unavailable).
   */
  reachesLazysnap(): Promise<void>;
  stop(): Promise<void>;
}

export interface ContainerdOptions {
  /** lazysnap's socket; registered as proxy plugin "lazysnap". */
  lazysnapSocket?: string;
  /** Extra TOML appended to the config (e.g. CRI settings). */
  extraConfig?: string;
  /** Keep the CRI plugin enabled (off by default: it slows start-up). */
  enableCri?: boolean;
}

/**
 * CRI settings for lazy pulls through lazysnap, as a Kubernetes node has
 * them: lazysnap is CRI's snapshotter, the remote-snapshot labels are on, and
 * the test registry (plain HTTP) is its own mirror. For `extraConfig`.
 */
export function criLazysnapConfig(registryHost: string): string {
  return [
    '[plugins."io.containerd.grpc.v1.cri".containerd]',
    '  snapshotter = "lazysnap"',
    '  disable_snapshot_annotations = false',
    `[plugins."io.containerd.grpc.v1.cri".registry.mirrors."${registryHost}"]`,
    `  endpoint = ["http://${registryHost}"]`,
  ].join('\n');
}

export async function startContainerd(workDir: string, options: ContainerdOptions = {}): Promise<ContainerdInstance> {
  const base = join(workDir, 'containerd');
  const root = join(base, 'root');
  const state = join(base, 'state');
  const socket = join(base, 'containerd.sock');
  mkdirSync(root, { recursive: true });
  mkdirSync(state, { recursive: true });
  const lines = [
    'version = 2',
    `root = "${root}"`,
    `state = "${state}"`,
    options.enableCri ? '' : 'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${socket}"`,
    '[ttrpc]',
    `  address = "${socket}.ttrpc"`,
    '[debug]',
    `  address = "${socket}.debug"`,
    '  level = "debug"',
  ];
  if (options.lazysnapSocket) {
    lines.push('[proxy_plugins.lazysnap]', '  type = "snapshot"', `  address = "${options.lazysnapSocket}"`);
  }
  if (options.extraConfig) lines.push(options.extraConfig);
  const configPath = join(base, 'config.toml');
  writeFileSync(configPath, `${lines.join('\n')}\n`);
  const proc = new ManagedProcess('containerd', ['--config', configPath], join(base, 'containerd.log'));
  const namespace = 'lazysnap-test';
  const ctr = async (args: string[], opts: { timeoutMs?: number } = {}): Promise<string> => {
    try {
      const { stdout } = await execFileAsync('ctr', ['--address', socket, '--namespace', namespace, ...args], {
        timeout: opts.timeoutMs ?? 300_000,
        maxBuffer: 64 * 1024 * 1024,
      });
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`ctr ${args.join(' ')} failed: ${e.stderr || e.message}`);
    }
  };
  await waitUntil(`containerd at ${socket}`, async () => {
    if (!proc.running) throw new Error(`containerd exited; see ${proc.logPath}`);
    if (!existsSync(socket)) return false;
    await ctr(['version'], { timeoutMs: 5000 });
    return true;
  }, 30_000, 200);
  return {
    socket,
    root,
    state,
    namespace,
    process: proc,
    ctr,
    reachesLazysnap: () =>
      waitUntil('containerd to reach lazysnap', async () => {
        await ctr(['snapshots', '--snapshotter', 'lazysnap', 'ls'], { timeoutMs: 5_000 });
        return true;
      }, 30_000, 200),
    stop: async () => {
      // Kill leftover tasks' shims with containerd; tests remove their containers first.
      await proc.stop(15_000);
    },
  };
}
