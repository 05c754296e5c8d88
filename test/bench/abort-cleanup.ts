// When a long benchmark is interrupted (Ctrl-C, SIGTERM) its finally blocks
// never run. This puts the machine back anyway: the harness's exit hook
// SIGKILLs the daemons it started (registered before this one, so it runs
// first); then the runc shims those containerds started, which outlive
// them, mounts below the work dir, the shaped link's namespace and the work
// dir itself go, synchronously, from the process's exit event.
import { readFileSync, readdirSync } from 'node:fs';
import { removeTree } from '../harness/process.js';
import { unmountUnder } from './mounts-under.js';

/** pids of containerd shims whose command line names a path below dir (their containerd's socket lives there). */
function shimPidsUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // exited while we looked
    }
    if ((args[0] ?? '').includes('containerd-shim') && args.some((a) => a.startsWith(`${dir}/`))) pids.push(Number(entry));
  }
  return pids;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') console.error(`kill ${pid}: ${(err as Error).message}`);
  }
}

/**
 * Until the returned function is called, SIGINT/SIGTERM end the process and
 * the exit event runs cleanup steps (each failure reported, none stopping
 * the next) and removes workDir once nothing is mounted below it.
 */
export function cleanUpOnAbort(workDir: string, steps: Array<() => void>): () => void {
  const onExit = () => {
    for (const pid of shimPidsUnder(workDir)) killQuietly(pid);
    let unmounted = false;
    for (const step of [() => { unmountUnder(workDir); unmounted = true; }, ...steps]) {
      try {
        step();
      } catch (err) {
        console.error(`cleanup after abort: ${(err as Error).message}`);
      }
    }
    // A recursive delete must not walk into a mount that is still there.
    if (unmounted) removeTree(workDir);
    else console.error(`cleanup after abort: left ${workDir} in place`);
  };
  const onInt = () => process.exit(130);
  const onTerm = () => process.exit(143);
  process.on('exit', onExit);
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return () => {
    process.off('exit', onExit);
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  };
}
