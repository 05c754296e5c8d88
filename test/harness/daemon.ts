// Starts the real `lazysnap serve` (the built CLI) on a socket in a temp dir.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
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
  /** Stops the daemon, then the FUSE manager serving its root if one runs (it unmounts every layer): a test's or benchmark's teardown. */
  stopWithFuseManager(): Promise<void>;
}

/** The pid of the FUSE manager of root (its lock file holds it), if one runs. */
export function fuseManagerPid(root: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(join(root, 'fuse-manager', 'lock'), 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** SIGTERM to the FUSE manager of root, waiting until it has unmounted its layers and exited. */
export async function stopFuseManager(root: string): Promise<void> {
  const pid = fuseManagerPid(root);
  if (pid === undefined) return;
  process.kill(pid, 'SIGTERM');
  await waitUntil(`FUSE manager ${pid} to exit`, () => fuseManagerPid(root) === undefined, 30_000);
}

/**
 * Longer than the daemon's own shutdown deadline (15 s, then up to 5 s to
 * detach its mounts): a slow shutdown then ends by the daemon's own deadline
 * path, as in production, not by a SIGKILL that leaves its FUSE mounts dead.
 */
const DAEMON_STOP_GRACE_MS = 25_000;
/** A stop slower than this has its log's last lines printed: the step it was stuck in is named there. */
const SLOW_STOP_MS = 5_000;

/** SIGTERM and wait; a slow or failed shutdown is reported on stderr with the daemon's last log lines, for diagnosis. */
async function stopDaemonProcess(proc: ManagedProcess): Promise<void> {
  const started = Date.now();
  await proc.stop(DAEMON_STOP_GRACE_MS);
  const ms = Date.now() - started;
  const exit = proc.child.exitCode ?? proc.child.signalCode;
  if (ms < SLOW_STOP_MS && exit === 0) return;
  let tail = '';
  try {
    tail = readFileSync(proc.logPath, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    tail = '(log unreadable)';
  }
  process.stderr.write(`# lazysnap daemon stop took ${ms} ms (exit ${String(exit)}); last lines of ${proc.logPath}:\n${tail}\n`);
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
      await stopDaemonProcess(proc);
    },
    kill: async () => {
      client.close();
      await proc.kill();
    },
    stopWithFuseManager: async () => {
      client.close();
      await stopDaemonProcess(proc);
      await stopFuseManager(root);
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
  // No FUSE manager unless the args ask for one: a daemon that fails late in its start-up would leave one behind.
  const command = [process.execPath, CLI_PATH, 'serve', '--no-fuse-manager', ...args];
  const argv = options.asUser === undefined ? command : ['setpriv', `--reuid=${options.asUser}`, `--regid=${options.asUser}`, '--clear-groups', ...command];
  const result = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout: options.timeoutMs ?? 20_000, killSignal: 'SIGKILL' });
  return { status: result.status, signal: result.signal, stderr: result.stderr };
}
