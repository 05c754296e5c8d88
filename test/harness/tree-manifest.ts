// Describes a directory tree as a person would compare two unpacked
// layers: per path its type, mode, owner, size, mtime, symlink target,
// content hash, extended attributes and which paths are hardlinks of each
// other. Uses python3 for xattrs (Node has no xattr API).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface TreeEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  link?: string;
  sha256?: string;
  xattrs: Record<string, string>;
  rdev?: number;
  /** Other paths sharing this entry's inode (sorted), for regular files with nlink > 1. */
  hardlinks?: string[];
}

const SCRIPT = String.raw`
import hashlib, json, os, stat, sys
root = sys.argv[1]
skip = set(sys.argv[2:])
out = {}
inodes = {}
for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
        full = os.path.join(dirpath, name)
        rel = os.path.relpath(full, root)
        if rel in skip:
            continue
        st = os.lstat(full)
        m = st.st_mode
        kind = 'dir' if stat.S_ISDIR(m) else 'reg' if stat.S_ISREG(m) else 'symlink' if stat.S_ISLNK(m) else 'char' if stat.S_ISCHR(m) else 'block' if stat.S_ISBLK(m) else 'fifo' if stat.S_ISFIFO(m) else 'other'
        e = {'type': kind, 'mode': stat.S_IMODE(m), 'uid': st.st_uid, 'gid': st.st_gid, 'size': st.st_size if kind == 'reg' else 0, 'mtime': int(st.st_mtime), 'xattrs': {}}
        if kind == 'symlink':
            e['link'] = os.readlink(full)
        if kind in ('char', 'block'):
            e['rdev'] = st.st_rdev
        if kind == 'reg':
            h = hashlib.sha256()
            with open(full, 'rb') as f:
                for block in iter(lambda: f.read(1 << 20), b''):
                    h.update(block)
            e['sha256'] = h.hexdigest()
            if st.st_nlink > 1:
                inodes.setdefault(st.st_ino, []).append(rel)
        try:
            for x in os.listxattr(full, follow_symlinks=False):
                if x.startswith('security.selinux'):
                    continue
                e['xattrs'][x] = os.getxattr(full, x, follow_symlinks=False).hex()
        except OSError:
            pass
        out[rel] = e
for paths in inodes.values():
    if len(paths) > 1:
        for p in paths:
            out[p]['hardlinks'] = sorted(paths)
print(json.dumps(out, sort_keys=True))
`;

/**
 * Asynchronous on purpose: the tree may be a FUSE mount served by this very
 * process, whose event loop must stay free to answer python's reads.
 */
export async function treeManifest(root: string, skip: string[] = []): Promise<Record<string, TreeEntry>> {
  const { stdout } = await execFileAsync('/usr/bin/python3', ['-c', SCRIPT, root, ...skip], { maxBuffer: 512 * 1024 * 1024 });
  return JSON.parse(stdout) as Record<string, TreeEntry>;
}

/** Human-readable differences between two manifests (empty when equal). */
export function diffTrees(expected: Record<string, TreeEntry>, actual: Record<string, TreeEntry>, ignore: Array<keyof TreeEntry> = []): string[] {
  const problems: string[] = [];
  for (const path of new Set([...Object.keys(expected), ...Object.keys(actual)])) {
    const a = expected[path];
    const b = actual[path];
    if (!a) problems.push(`unexpected ${path}`);
    else if (!b) problems.push(`missing ${path}`);
    else {
      for (const key of Object.keys({ ...a, ...b }) as Array<keyof TreeEntry>) {
        if (ignore.includes(key)) continue;
        if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) problems.push(`${path}: ${key} ${JSON.stringify(b[key])}, expected ${JSON.stringify(a[key])}`);
      }
    }
  }
  return problems;
}
