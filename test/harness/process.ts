// Helpers for tests that start real daemons: temp dirs, free ports, child
// processes that are always stopped, and polling with a deadline.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, createWriteStream, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Work trees made by makeTempDir: the only trees LAZYSNAP_KEEP_TEST_DIRS keeps. */
const workTrees = new Set<string>();

export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `lazysnap-${prefix}-`));
  workTrees.add(dir);
  return dir;
}

/**
 * Removes a tree. A test's whole work tree (from makeTempDir) is kept when
 * LAZYSNAP_KEEP_TEST_DIRS is set, to debug a failure from its logs; trees a
 * test removes as part of what it checks are always removed.
 */
export function removeTree(path: string): void {
  if (process.env.LAZYSNAP_KEEP_TEST_DIRS && workTrees.has(path)) {
    process.stderr.write(`# kept ${path} (LAZYSNAP_KEEP_TEST_DIRS)\n`);
    return;
  }
  rmSync(path, { recursive: true, force: true });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
}

/** A child process whose output goes to a log file and which is stopped with the test. */
export class ManagedProcess {
  readonly child: ChildProcess;
  readonly logPath: string;
  private readonly log: WriteStream;
  private exited: Promise<number | null>;

  constructor(command: string, args: string[], logPath: string, env: NodeJS.ProcessEnv = process.env) {
    this.logPath = logPath;
    this.log = createWriteStream(logPath, { flags: 'a' });
    this.child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.pipe(this.log, { end: false });
    this.child.stderr?.pipe(this.log, { end: false });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code) => resolve(code));
      this.child.once('error', () => resolve(null));
    });
    liveProcesses.add(this);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  waitExit(): Promise<number | null> {
    return this.exited;
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs = 10_000): Promise<void> {
    liveProcesses.delete(this);
    if (this.running) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.log.end();
  }

  async kill(): Promise<void> {
    liveProcesses.delete(this);
    if (this.running) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    this.log.end();
  }
}

const liveProcesses = new Set<ManagedProcess>();
process.once('exit', () => {
  for (const p of liveProcesses) {
    if (p.running) p.child.kill('SIGKILL');
  }
});
