import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const isRoot = process.getuid?.() === 0;

function tryRun(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A tree with every kind of entry a container layer holds. */
export function makeTree(root: string): { devices: boolean } {
  const p = (...parts: string[]): string => join(root, ...parts);
  mkdirSync(p('etc'), { recursive: true });
  mkdirSync(p('usr', 'bin'), { recursive: true });
  mkdirSync(p('tmp'));
  const deep = p('deep', ...Array.from({ length: 12 }, (_, i) => `level-${i}-${'d'.repeat(20)}`));
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, `leaf-${'x'.repeat(150)}.txt`), 'deep leaf\n');
  writeFileSync(p('etc', 'hosts'), '127.0.0.1 localhost\n');
  writeFileSync(p('usr', 'bin', 'big'), randomBytes(200_000));
  writeFileSync(p('usr', 'bin', 'exact'), randomBytes(65_536 * 2));
  writeFileSync(p('usr', 'empty'), '');
  writeFileSync(p('usr', 'ünïcødé.txt'), 'unicode\n');
  writeFileSync(p('usr', 'bin', 'owned'), 'owned by a big uid\n');
  symlinkSync('big', p('usr', 'bin', 'sh'));
  symlinkSync('/etc/hosts', p('usr', 'abs-link'));
  symlinkSync('../nowhere', p('usr', 'dangling'));
  linkSync(p('usr', 'bin', 'big'), p('usr', 'bin', 'big-link'));
  linkSync(p('usr', 'bin', 'big'), p('etc', 'big-link2'));
  writeFileSync(p('etc', '.wh.removed'), '');
  writeFileSync(p('tmp', '.wh..wh..opq'), '');
  execFileSync('mkfifo', [p('usr', 'fifo')]);
  const devices = isRoot && tryRun('mknod', [p('usr', 'null'), 'c', '1', '3']) && tryRun('mknod', [p('usr', 'loop'), 'b', '7', '200']);
  chmodSync(p('usr', 'bin', 'big'), 0o4755);
  chmodSync(p('tmp'), 0o1777);
  chmodSync(p('etc', 'hosts'), 0o600);
  if (isRoot) {
    chownSync(p('etc', 'hosts'), 1234, 5678);
    chownSync(p('usr', 'bin', 'owned'), 3_000_000, 3_000_001);
  }
  const walk = (dir: string): string[] => readdirSync(dir).flatMap((n) => {
    const full = join(dir, n);
    return lstatSync(full).isDirectory() ? [...walk(full), full] : [full];
  });
  for (const [i, full] of walk(root).entries()) {
    if (!lstatSync(full).isSymbolicLink()) utimesSync(full, 1_000_000_000, 315_532_800 + i * 1000 + 0.5);
  }
  utimesSync(root, 1_000_000_000, 1_600_000_000);
  return { devices };
}

export interface Facts {
  type: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  content?: string;
  target?: string;
  rdev?: number;
  ino: number;
}

export function describeTree(root: string, skip: ReadonlySet<string> = new Set()): Map<string, Facts> {
  const out = new Map<string, Facts>();
  const visit = (rel: string): void => {
    const full = join(root, rel);
    const st = lstatSync(full);
    const facts: Facts = { type: st.mode & 0o170000, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000), size: st.isFile() ? st.size : 0, ino: st.ino };
    if (st.isFile()) facts.content = readFileSync(full).toString('base64');
    if (st.isSymbolicLink()) facts.target = readlinkSync(full);
    if (st.isCharacterDevice() || st.isBlockDevice()) facts.rdev = st.rdev;
    out.set(rel, facts);
    if (st.isDirectory()) for (const n of readdirSync(full).sort()) if (!(rel === '' && skip.has(n))) visit(rel === '' ? n : join(rel, n));
  };
  visit('');
  return out;
}
