// Shared bits of the FUSE tests: a logger that records, temp dirs, commands.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FuseLogger } from '../../../src/fuse/logger.js';

export const execFileAsync = promisify(execFile);

export interface LogRecord {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string | undefined;
}

export interface RecordingLogger extends FuseLogger {
  records: LogRecord[];
}

export function recordingLogger(): RecordingLogger {
  const records: LogRecord[] = [];
  const at = (level: LogRecord['level']) => (obj: object, msg?: string) => {
    records.push({ level, obj: obj as Record<string, unknown>, msg });
    if (process.env.LAZYSNAP_TEST_LOG) console.error(level, msg, obj);
  };
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A fresh directory others can traverse (allow_other tests run as uid 1000). */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `lazysnap-${prefix}-`));
  await chmod(dir, 0o755);
  return dir;
}

/** Best-effort removal of a test dir; lazily unmounts anything left in it first. */
export async function removeTempDir(dir: string, mountpoints: string[]): Promise<void> {
  for (const mp of mountpoints) {
    await execFileAsync('umount', ['-l', mp]).catch(() => {});
  }
  await rm(dir, { recursive: true, force: true }).catch(() => {});
}

/** Mountinfo lines mentioning a path (for assertions that show what is left). */
export async function mountLinesUnder(dir: string): Promise<string[]> {
  const { readFile } = await import('node:fs/promises');
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').filter((line) => line.split(' ')[4]?.startsWith(dir));
}

/** Runs python3 with a script; resolves stdout. */
export async function python(script: string, args: string[] = []): Promise<string> {
  const { stdout } = await execFileAsync('python3', ['-c', script, ...args], { timeout: 20_000 });
  return stdout;
}

/** Deterministic PRNG (mulberry32) so a failing random-offset test can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomBytesSeeded(size: number, seed: number): Buffer {
  const next = prng(seed);
  const buf = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) buf.writeUInt32LE(Math.floor(next() * 4294967296), Math.min(i, size - 4));
  return buf;
}
