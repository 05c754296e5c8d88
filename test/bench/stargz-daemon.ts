// containerd/stargz-snapshotter's daemon (containerd-stargz-grpc), the peer
// lazysnap is measured against. The binary is not part of the project: it
// comes from STARGZ_BIN, and a benchmark without it leaves the stargz column
// out.
import { accessSync, constants, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ManagedProcess, waitUntil } from '../harness/process.js';

export type StargzBinary = { available: true; path: string; version: string } | { available: false; reason: string };

/** Whether STARGZ_BIN names an executable containerd-stargz-grpc (it must answer -version as one). */
export function findStargzBinary(path: string | undefined): StargzBinary {
  if (!path) return { available: false, reason: 'STARGZ_BIN is not set' };
  try {
    if (!statSync(path).isFile()) return { available: false, reason: `STARGZ_BIN=${path} is not a file` };
    accessSync(path, constants.X_OK);
  } catch (err) {
    return { available: false, reason: `STARGZ_BIN=${path}: ${(err as Error).message}` };
  }
  let version: string;
  try {
    version = execFileSync(path, ['-version'], { timeout: 10_000, stdio: 'pipe' }).toString().trim();
  } catch (err) {
    return { available: false, reason: `STARGZ_BIN=${path} -version failed: ${(err as Error).message}` };
  }
  if (!version.startsWith('containerd-stargz-grpc')) return { available: false, reason: `STARGZ_BIN=${path} is not containerd-stargz-grpc (-version said "${version}")` };
  return { available: true, path, version };
}

/** stargz-snapshotter resolves through its own hosts config: every registry host is an insecure (plain HTTP) mirror of itself. */
export function writeStargzConfig(path: string, registryHosts: string[]): void {
  const lines = registryHosts.flatMap((host) => [`[[resolver.host."${host}".mirrors]]`, `host = "${host}"`, 'insecure = true', '']);
  writeFileSync(path, lines.join('\n'));
}

export interface StargzDaemon {
  socket: string;
  root: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startStargzDaemon(binary: string, workDir: string, configPath: string, logLevel = 'info'): Promise<StargzDaemon> {
  const root = join(workDir, 'root');
  const socket = join(workDir, 'stargz.sock');
  mkdirSync(root, { recursive: true });
  const proc = new ManagedProcess(binary, ['-address', socket, '-config', configPath, '-root', root, '-log-level', logLevel], join(workDir, 'stargz.log'));
  await waitUntil(`stargz-snapshotter socket ${socket}`, () => {
    if (!proc.running) throw new Error(`containerd-stargz-grpc exited with ${proc.child.exitCode}; see ${proc.logPath}`);
    return existsSync(socket);
  }, 30_000);
  return { socket, root, process: proc, stop: () => proc.stop() };
}
