// Runs the built `lazysnap` CLI as a user would.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI_PATH } from './daemon.js';

const execFileAsync = promisify(execFile);

export async function lazysnapCli(args: string[], timeoutMs = 600_000): Promise<{ stdout: string; stderr: string }> {
  try {
    return await execFileAsync(process.execPath, [CLI_PATH, ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`lazysnap ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}
