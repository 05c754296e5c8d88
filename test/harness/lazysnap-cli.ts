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

export interface CliOutcome {
  /** Exit code; null when the process was killed (timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/** Runs the CLI and returns how it ended, for tests of commands that must fail. */
export function lazysnapCliOutcome(args: string[], timeoutMs = 120_000): Promise<CliOutcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_PATH, ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ code, stdout, stderr, elapsedMs: Date.now() - started });
    });
  });
}
