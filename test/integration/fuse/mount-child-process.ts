// Starts mount-child.ts: a process that mounts a small layer at each given
// path and serves it until killed. Killed with SIGKILL, it leaves the dead
// mounts a crashed lazysnap would leave.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./mount-child.js', import.meta.url));

/** Resolves once every mount serves (the child printed "ready"). */
export function spawnMountChild(mountpoints: string[], timeoutMs = 15_000): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CHILD, ...mountpoints], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mount child not ready after ${timeoutMs} ms: ${err}`));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mount child exited (${code}) before mounting: ${err}`));
    });
  });
}

/** Mounts at each path from a child process and kills it: the mounts stay, dead (ENOTCONN). */
export async function leaveStaleMounts(mountpoints: string[]): Promise<void> {
  const child = await spawnMountChild(mountpoints);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}
