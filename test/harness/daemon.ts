// Starts the real `lazysnap serve` (the built CLI) on a socket in a temp dir.
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

export async function startDaemon(workDir: string, extraArgs: string[] = []): Promise<DaemonInstance> {
  mkdirSync(workDir, { recursive: true });
  const socket = join(workDir, 'lazysnap.sock');
  const root = join(workDir, 'root');
  const proc = new ManagedProcess(
    process.execPath,
    [CLI_PATH, 'serve', '--address', socket, '--root', root, '--log-level', 'debug', '--config', '/dev/null', ...extraArgs],
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
