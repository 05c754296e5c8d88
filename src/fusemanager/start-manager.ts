/**
 * Starts `lazysnap fuse-manager` for a daemon that found none: detached (its
 * own session, no stdio of the daemon's), so that it outlives the daemon, and
 * logging to a file beside its socket. Under systemd the daemon's unit must
 * not kill it with the daemon (examples/lazysnap.service: KillMode=process),
 * or it runs as a unit of its own (examples/lazysnap-fuse-manager.service).
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { StartedManager } from './managed-mounter.js';
import { managerDirectory } from './protocol.js';

export interface ManagerLaunch {
  /** The `lazysnap` entry point to run (the daemon's own build). */
  cliPath: string;
  root: string;
  /** The daemon's config file; undefined: it ran on the embedded defaults. */
  configFile: string | undefined;
  logLevel: string;
}

export async function startManagerProcess(launch: ManagerLaunch): Promise<StartedManager> {
  const dir = managerDirectory(launch.root);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const logPath = join(dir, 'manager.log');
  const log = await open(logPath, 'a', 0o600);
  try {
    const env = { ...process.env };
    // systemd's readiness is the daemon's to tell, never the manager's.
    delete env.NOTIFY_SOCKET;
    const child = spawn(
      process.execPath,
      [launch.cliPath, 'fuse-manager', '--root', launch.root, '--config', launch.configFile ?? '/dev/null', '--log-level', launch.logLevel, '--log-format', 'json'],
      { detached: true, stdio: ['ignore', log.fd, log.fd], env },
    );
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', () => resolve(null));
    });
    child.unref();
    return { exited, logPath };
  } finally {
    await log.close();
  }
}
