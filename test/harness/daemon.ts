// Starts the real `lazysnap serve` (the built CLI) on a socket in a temp dir.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SnapshotsClient } from '../../src/containerd/snapshots-client.js';
import { ManagedProcess, waitUntil } from './process.js';

export const CLI_PATH = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface DaemonInstance {
  socket: string;
  root: string;
  process: ManagedProcess;
  client: SnapshotsClient;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

export interface DaemonOptions {
  /**
   * Serve the FUSE mounts from a FUSE manager process (the product's default).
   * Off here unless asked: most tests expect mounts to end with the daemon, and
   * a manager outlives it (the test must stop the manager itself).
   */
  fuseManager?: boolean;
  /** Another build's `lazysnap` entry point (an upgrade). */
  cliPath?: string;
}

export async function startDaemon(workDir: string, extraArgs: string[] = [], options: DaemonOptions = {}): Promise<DaemonInstance> {
  mkdirSync(workDir, { recursive: true });
  const socket = join(workDir, 'lazysnap.sock');
  const root = join(workDir, 'root');
  const proc = new ManagedProcess(
    process.execPath,
    [options.cliPath ?? CLI_PATH, 'serve', '--address', socket, '--root', root, '--log-level', 'debug', '--config', '/dev/null', options.fuseManager ? '--fuse-manager' : '--no-fuse-manager', ...extraArgs],
    join(workDir, 'lazysnap.log'),
  );
  await waitUntil(`lazysnap socket ${socket}`, () => {
    if (!proc.running) throw new Error(`lazysnap exited with ${proc.child.exitCode}; see ${proc.logPath}`);
    return existsSync(socket);
  });
  const client = new SnapshotsClient({ address: socket, timeoutMs: 30_000 });
  await waitUntil('lazysnap answers', async () => {
    await client.list(['name==nothing']);
    return true;
  });
  return {
    socket,
    root,
    process: proc,
    client,
    stop: async () => {
      client.close();
      await proc.stop();
    },
    kill: async () => {
      client.close();
      await proc.kill();
    },
  };
}

export interface ServeResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Runs `lazysnap serve ARGS` to its end, for start-ups that must fail; a
 * daemon that starts instead is killed after timeoutMs (status null, SIGKILL:
 * a daemon that should not have started may not shut down cleanly either).
 */
export function runServeToExit(args: string[], options: { timeoutMs?: number; asUser?: number } = {}): ServeResult {
  const command = [process.execPath, CLI_PATH, 'serve', ...args];
  const argv = options.asUser === undefined ? command : ['setpriv', `--reuid=${options.asUser}`, `--regid=${options.asUser}`, '--clear-groups', ...command];
  const result = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout: options.timeoutMs ?? 20_000, killSignal: 'SIGKILL' });
  return { status: result.status, signal: result.signal, stderr: result.stderr };
}
