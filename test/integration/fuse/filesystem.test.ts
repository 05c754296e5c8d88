// Mounts an in-memory layer over real FUSE and checks what the kernel shows
// through node:fs and child processes. Only asynchronous fs calls: the FUSE
// handlers run on this process's event loop.
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isMounted, mountLayer, type MountedLayer } from '../../../src/fuse/index.js';
import type { FsNode } from '../../../src/fuse/types.js';
import { BIG_SIZE, CHUNK_SIZE, LONG_XATTR, MANY_XATTRS, richEntries } from './fixtures.js';
import {
  execFileAsync,
  mountLinesUnder,
  prng,
  python,
  recordingLogger,
  removeTempDir,
  tempDir,
  type RecordingLogger,
} from './helpers.js';
import { buildLayer, type MemoryLayer } from './memory-layer.js';

// Computed here independently of src/fuse/attributes.ts.
const TYPE_BITS: Record<FsNode['type'], number> = {
  dir: constants.S_IFDIR,
  reg: constants.S_IFREG,
  symlink: constants.S_IFLNK,
  char: constants.S_IFCHR,
  block: constants.S_IFBLK,
  fifo: constants.S_IFIFO,
};

/** glibc's 64-bit makedev(). */
function glibcMakedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

async function rejectsWith(code: string, promise: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(promise, (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, code, `${what}: expected ${code}, got ${err.code}`);
    return true;
  });
}

describe('read-only FUSE layer', () => {
  let dir: string;
  let mnt: string;
  let layer: MemoryLayer;
  let logger: RecordingLogger;
  let mounted: MountedLayer | undefined;
  const at = (path: string): string => join(mnt, path);

  before(async () => {
    dir = await tempDir('fs');
    mnt = join(dir, 'mnt');
    await fs.mkdir(mnt);
    await fs.chmod(mnt, 0o755);
    layer = buildLayer(richEntries(), { chunkSize: CHUNK_SIZE });
    logger = recordingLogger();
    mounted = await mountLayer(layer, mnt, { logger, fsname: 'lazysnap', subtype: 'estargz' });
  });

  after(async () => {
    try {
      await mounted?.unmount();
    } finally {
      await removeTempDir(dir, [mnt]);
    }
  });

  it('is in the mount table as a read-only fuse.estargz mount for all users', async () => {
    const lines = await mountLinesUnder(mnt);
    assert.equal(lines.length, 1, lines.join('\n'));
    const fields = (lines[0] as string).split(' ');
    const sep = fields.indexOf('-');
    assert.equal(fields[4], mnt);
    assert.equal(fields[sep + 1], 'fuse.estargz');
    assert.equal(fields[sep + 2], 'lazysnap');
    const mountOpts = (fields[5] as string).split(',');
    assert.ok(mountOpts.includes('ro'), `mount options ${fields[5]}`);
    assert.ok(!mountOpts.includes('nosuid'), `setuid must stay effective: ${fields[5]}`);
    const superOpts = (fields[sep + 3] as string).split(',');
    assert.ok(superOpts.includes('allow_other'), `super options ${fields[sep + 3]}`);
    assert.ok(superOpts.includes('default_permissions'), `super options ${fields[sep + 3]}`);
    assert.equal(await isMounted(mnt), true);
  });

  it('stat reports every node as the layer describes it', async () => {
    const names: Array<[string, FsNode]> = [...layer.paths].map(([node, path]) => [path, node]);
    const hardB = layer.lookup('/data/hard-b');
    assert.ok(hardB);
    names.push(['/data/hard-b', hardB]);
    for (const [path, node] of names) {
      const st = await fs.lstat(at(path), { bigint: true });
      const where = `${path}: `;
      assert.equal(Number(st.mode), TYPE_BITS[node.type] | node.mode, `${where}mode ${st.mode.toString(8)}`);
      assert.equal(Number(st.uid), node.uid, `${where}uid`);
      assert.equal(Number(st.gid), node.gid, `${where}gid`);
      assert.equal(Number(st.size), node.size, `${where}size`);
      assert.equal(Number(st.nlink), node.nlink, `${where}nlink`);
      assert.equal(Number(st.ino), node.ino, `${where}ino (use_ino)`);
      assert.equal(st.mtimeNs, BigInt(node.mtimeMs) * 1_000_000n, `${where}mtime`);
      assert.equal(st.ctimeNs, st.mtimeNs, `${where}ctime`);
      assert.equal(Number(st.blocks), Math.ceil(node.size / 512), `${where}blocks`);
      assert.equal(Number(st.blksize), 4096, `${where}blksize`);
      const device = node.type === 'char' || node.type === 'block';
      assert.equal(st.rdev, device ? glibcMakedev(node.devMajor ?? 0, node.devMinor ?? 0) : 0n, `${where}rdev`);
    }
    // Spot checks against literal values, in case the layer helper and the
    // filesystem were wrong the same way.
    const big = await fs.stat(at('/data/big.bin'));
    assert.equal(big.size, BIG_SIZE);
    const su = await fs.stat(at('/bin/su'));
    assert.equal(su.mode, 0o104755);
    const epoch = await fs.stat(at('/etc/epoch'));
    assert.equal(epoch.mtimeMs, 0, 'an epoch mtime must not become "now"');
    const hostname = await fs.stat(at('/etc/hostname'));
    assert.equal(hostname.mtimeMs, 1_700_000_000_123);
    const devnull = await fs.stat(at('/dev/null'));
    assert.ok(devnull.isCharacterDevice());
    assert.equal(devnull.rdev, 259); // makedev(1, 3)
    const whiteout = await fs.lstat(at('/etc/gone'));
    assert.ok(whiteout.isCharacterDevice());
    assert.equal(whiteout.rdev, 0);
    const home = await fs.stat(at('/home/user'));
    assert.equal(home.mode, 0o40700);
    assert.equal(home.uid, 1000);
    const root = await fs.stat(mnt);
    assert.equal(root.nlink, 2 + [...(layer.root.children?.values() ?? [])].filter((c) => c.type === 'dir').length);
  });

  it('hardlinks share their inode number and their content', async () => {
    const a = await fs.stat(at('/data/hard-a'));
    const b = await fs.stat(at('/data/hard-b'));
    assert.equal(a.ino, b.ino);
    assert.equal(a.nlink, 2);
    assert.equal(b.nlink, 2);
    assert.notEqual(a.ino, (await fs.stat(at('/data/medium.bin'))).ino);
    assert.deepEqual(await fs.readFile(at('/data/hard-b')), await fs.readFile(at('/data/hard-a')));
    assert.equal(await fs.readFile(at('/data/hard-b'), 'utf8'), 'shared by two names\n');
  });

  it('readdir lists every child with its file type', async () => {
    for (const [node, path] of layer.paths) {
      if (node.type !== 'dir') continue;
      const entries = await fs.readdir(at(path), { withFileTypes: true });
      const expected = [...(node.children?.keys() ?? [])].sort();
      assert.deepEqual(entries.map((e) => e.name).sort(), expected, `listing of ${path}`);
      for (const entry of entries) {
        const child = node.children?.get(entry.name) as FsNode;
        const kind = entry.isDirectory()
          ? 'dir'
          : entry.isFile()
            ? 'reg'
            : entry.isSymbolicLink()
              ? 'symlink'
              : entry.isCharacterDevice()
                ? 'char'
                : entry.isBlockDevice()
                  ? 'block'
                  : entry.isFIFO()
                    ? 'fifo'
                    : 'unknown';
        assert.equal(kind, child.type, `d_type of ${path}/${entry.name}`);
      }
    }
    const { stdout } = await execFileAsync('ls', ['-a1', at('/etc')]);
    assert.deepEqual(stdout.trim().split('\n'), ['.', '..', 'epoch', 'gone', 'hostname', 'shadow']);
    // Inode numbers in readdir (d_ino) are ours too.
    const { stdout: lsi } = await execFileAsync('ls', ['-i1', at('/data')]);
    const inoOf = new Map(lsi.trim().split('\n').map((l) => l.trim().split(/\s+/).reverse() as [string, string]));
    assert.equal(inoOf.get('hard-a'), String(layer.lookup('/data/hard-a')?.ino));
    assert.equal(inoOf.get('hard-b'), inoOf.get('hard-a'));
  });

  it('readlink returns symlink targets, and relative links resolve', async () => {
    assert.equal(await fs.readlink(at('/link-rel')), 'etc/hostname');
    assert.equal(await fs.readlink(at('/link-abs')), '/nonexistent/target');
    assert.equal(await fs.readFile(at('/link-rel'), 'utf8'), 'lazysnap\n');
    await rejectsWith('EINVAL', fs.readlink(at('/etc/hostname')), 'readlink of a file');
  });

  it('reads at random offsets return the right bytes', async () => {
    // Before any whole-file read, so these come to us rather than the page cache.
    const random = prng(42);
    for (const path of ['/data/big.bin', '/data/medium.bin']) {
      const expected = layer.dataOf(path);
      const handle = await fs.open(at(path), 'r');
      try {
        for (let i = 0; i < 150; i++) {
          const offset = Math.floor(random() * (expected.length + 1000));
          const length = 1 + Math.floor(random() * 300_000);
          const buf = Buffer.alloc(length);
          const { bytesRead } = await handle.read(buf, 0, length, offset);
          const want = expected.subarray(Math.min(offset, expected.length), Math.min(offset + length, expected.length));
          assert.equal(bytesRead, want.length, `${path} read ${length} at ${offset}`);
          assert.ok(buf.subarray(0, bytesRead).equals(want), `${path} bytes at ${offset}+${length}`);
        }
        const atEof = await handle.read(Buffer.alloc(10), 0, 10, expected.length);
        assert.equal(atEof.bytesRead, 0, 'read at EOF');
        const pastEof = await handle.read(Buffer.alloc(10), 0, 10, expected.length + 12345);
        assert.equal(pastEof.bytesRead, 0, 'read past EOF');
      } finally {
        await handle.close();
      }
    }
    const bigReads = layer.reads.filter((r) => r.path === '/data/big.bin');
    assert.ok(bigReads.some((r) => r.offset > 1024 * 1024), 'reads reached the layer at high offsets');
    // Chunked answers were completed by asking again for the rest.
    assert.ok(bigReads.some((r) => r.offset % CHUNK_SIZE === 0 && r.offset > 0), 'follow-up reads at chunk boundaries');
  });

  it('regular files read back byte for byte', async () => {
    for (const [node, path] of layer.paths) {
      if (node.type !== 'reg') continue;
      const got = await fs.readFile(at(path));
      assert.ok(got.equals(layer.dataOf(path)), `content of ${path} (${got.length} vs ${node.size} bytes)`);
    }
    // A copy by another program, for good measure.
    const { stdout } = await execFileAsync('sha256sum', [at('/data/big.bin')]);
    const { createHash } = await import('node:crypto');
    assert.equal(stdout.split(' ')[0], createHash('sha256').update(layer.dataOf('/data/big.bin')).digest('hex'));
  });

  it('serves extended attributes with getxattr/listxattr size conventions', async () => {
    const script = `
import errno, json, os, sys
p = sys.argv[1]
def err(f):
    try:
        f()
        return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]
out = {
  'comment': os.getxattr(p + '/attrs/file', 'user.comment').decode(),
  'long': os.getxattr(p + '/attrs/file', 'user.long').decode(),
  'trusted': os.getxattr(p + '/attrs/file', 'trusted.lazysnap').decode(),
  'list': sorted(os.listxattr(p + '/attrs/file')),
  'many': sorted(os.listxattr(p + '/attrs/many')),
  'opaque': os.getxattr(p + '/opaque', 'trusted.overlay.opaque').decode(),
  'none': os.listxattr(p + '/etc/hostname'),
  'missing': err(lambda: os.getxattr(p + '/etc/hostname', 'user.missing')),
  'set': err(lambda: os.setxattr(p + '/etc/hostname', 'user.new', b'v')),
  'remove': err(lambda: os.removexattr(p + '/attrs/file', 'user.comment')),
}
print(json.dumps(out))
`;
    const out = JSON.parse(await python(script, [mnt])) as Record<string, unknown>;
    assert.deepEqual(out, {
      comment: 'hello',
      long: LONG_XATTR,
      trusted: 'secret',
      list: ['trusted.lazysnap', 'user.comment', 'user.long'],
      many: Object.keys(MANY_XATTRS).sort(),
      opaque: 'y',
      none: [],
      missing: 'ENODATA',
      set: 'EROFS',
      remove: 'EROFS',
    });
    // getfattr (Debian package attr) when installed: a second, C client.
    const hasGetfattr = await execFileAsync('sh', ['-c', 'command -v getfattr']).then(
      () => true,
      () => false,
    );
    if (hasGetfattr) {
      const { stdout } = await execFileAsync('getfattr', ['--only-values', '-n', 'user.long', at('/attrs/file')]);
      assert.equal(stdout, LONG_XATTR);
    }
  });

  it('refuses every kind of write with EROFS', async () => {
    await rejectsWith('EROFS', fs.writeFile(at('/etc/hostname'), 'x'), 'overwrite');
    await rejectsWith('EROFS', fs.writeFile(at('/newfile'), 'x'), 'create');
    await rejectsWith('EROFS', fs.open(at('/etc/hostname'), 'r+'), 'open read-write');
    await rejectsWith('EROFS', fs.appendFile(at('/etc/hostname'), 'x'), 'append');
    await rejectsWith('EROFS', fs.truncate(at('/etc/hostname'), 0), 'truncate');
    await rejectsWith('EROFS', fs.mkdir(at('/newdir')), 'mkdir');
    await rejectsWith('EROFS', fs.rmdir(at('/opaque')), 'rmdir');
    await rejectsWith('EROFS', fs.unlink(at('/etc/hostname')), 'unlink');
    await rejectsWith('EROFS', fs.rename(at('/etc/hostname'), at('/etc/renamed')), 'rename');
    await rejectsWith('EROFS', fs.chmod(at('/etc/hostname'), 0o777), 'chmod');
    await rejectsWith('EROFS', fs.chown(at('/etc/hostname'), 1, 1), 'chown');
    await rejectsWith('EROFS', fs.utimes(at('/etc/hostname'), 1, 1), 'utimes');
    await rejectsWith('EROFS', fs.symlink('x', at('/newlink')), 'symlink');
    await rejectsWith('EROFS', fs.link(at('/etc/hostname'), at('/newhard')), 'link');
    const mknod = await python(
      `import os, sys, errno
try:
    os.mkfifo(sys.argv[1])
    print('ok')
except OSError as e:
    print(errno.errorcode[e.errno])`,
      [at('/newfifo')],
    );
    assert.equal(mknod.trim(), 'EROFS', 'mknod');
    // Nothing changed.
    assert.equal(await fs.readFile(at('/etc/hostname'), 'utf8'), 'lazysnap\n');
  });

  it('statfs reports the layer size and no free space', async () => {
    const st = await fs.statfs(mnt);
    assert.equal(st.type, 0x65735546); // FUSE_SUPER_MAGIC
    assert.equal(st.bsize, 4096);
    assert.equal(st.blocks, Math.ceil(layer.totalSize / 4096));
    assert.equal(st.bfree, 0);
    assert.equal(st.bavail, 0);
    assert.equal(st.ffree, 0);
    const inodes = new Set([...layer.paths.keys()].map((n) => n.ino));
    assert.equal(st.files, inodes.size);
  });

  it('lets other users in, within the layer\'s permissions', async () => {
    const as = (uid: number) => ({ uid, gid: uid, timeout: 10_000 });
    const { stdout } = await execFileAsync('cat', [at('/etc/hostname')], as(1000));
    assert.equal(stdout, 'lazysnap\n');
    await assert.rejects(execFileAsync('cat', [at('/etc/shadow')], as(1000)), /Permission denied/);
    const notes = await execFileAsync('cat', [at('/home/user/notes')], as(1000));
    assert.equal(notes.stdout, 'private\n');
    await assert.rejects(execFileAsync('cat', [at('/home/user/notes')], as(1001)), /Permission denied/);
  });

  it('logged no errors while serving', () => {
    const errors = logger.records.filter((r) => r.level === 'error' || r.level === 'warn');
    assert.deepEqual(errors, []);
  });

  it('unmounts cleanly, once, however often asked', async () => {
    assert.ok(mounted);
    await Promise.all([mounted.unmount(), mounted.unmount()]);
    await mounted.unmount();
    assert.equal(await isMounted(mnt), false);
    assert.deepEqual(await mountLinesUnder(dir), []);
    // The directory is an ordinary empty directory again.
    assert.deepEqual(await fs.readdir(mnt), []);
  });
});

describe('mounting a layer where it cannot go', () => {
  it('refuses a mountpoint that is missing or not a directory, and leaves no mount behind', async () => {
    const dir = await tempDir('fs-refused');
    try {
      const layer = buildLayer(richEntries(), { chunkSize: CHUNK_SIZE });
      const logger = recordingLogger();
      await rejectsWith('ENOENT', mountLayer(layer, join(dir, 'missing'), { logger }), 'a missing mountpoint');
      await fs.writeFile(join(dir, 'file'), 'not a directory');
      await assert.rejects(mountLayer(layer, join(dir, 'file'), { logger }), /not a directory/);
      assert.deepEqual(await mountLinesUnder(dir), []);
    } finally {
      await removeTempDir(dir, []);
    }
  });
});
