// The handlers called directly, without a kernel in between: the answers the
// kernel normally spares them (its "ro" mount refuses writes first, its page
// cache clips reads at EOF) must still be right, and a handler must answer
// exactly once whatever the layer does.
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import { describe, it } from 'node:test';
import type Fuse from 'fuse-native';
import { createOperations, makedev } from '../../../src/fuse/index.js';
import { buildMountOptions } from '../../../src/fuse/mount-options.js';
import { isFuseType, parseMountInfo } from '../../../src/fuse/mountinfo.js';
import type { FsNode, LayerContent } from '../../../src/fuse/types.js';
import { recordingLogger } from './helpers.js';
import { buildLayer, type MemoryLayerOptions } from './memory-layer.js';

// Linux errno values, written out so a wrong constant in src/ shows.
const EROFS = -30;
const ENOENT = -2;
const EIO = -5;
const ENXIO = -6;
const ENOTDIR = -20;
const EISDIR = -21;
const EINVAL = -22;
const ELOOP = -40;
const ENODATA = -61;

type AnyOp = (...args: unknown[]) => void;

/** Calls a handler and resolves with everything passed to its callback; fails on a second answer. */
async function call(ops: Fuse.Operations, name: keyof Fuse.Operations, ...args: unknown[]): Promise<unknown[]> {
  const op = ops[name] as AnyOp | undefined;
  assert.ok(op, `handler ${name} exists`);
  let answers = 0;
  const result = await new Promise<unknown[]>((resolve) => {
    op(...args, (...res: unknown[]) => {
      answers++;
      resolve(res);
    });
  });
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(answers, 1, `${name} answered ${answers} times`);
  return result;
}

function setup(options: MemoryLayerOptions = {}) {
  const layer = buildLayer(
    [
      { path: '/dir/file', type: 'reg', data: '0123456789' },
      { path: '/dir/link', type: 'symlink', linkName: 'file' },
      { path: '/dir/fifo', type: 'fifo' },
      { path: '/dir/null', type: 'char', devMajor: 1, devMinor: 3 },
      { path: '/big', type: 'reg', data: Buffer.from(Array.from({ length: 250_000 }, (_, i) => i % 251)) },
      { path: '/attr', type: 'reg', data: '', xattrs: { 'user.a': 'b' } },
    ],
    options,
  );
  const logger = recordingLogger();
  return { layer, logger, ops: createOperations(layer, logger) };
}

async function openFile(ops: Fuse.Operations, path: string): Promise<number> {
  const [code, fd] = await call(ops, 'open', path, constants.O_RDONLY);
  assert.equal(code, 0);
  assert.ok(typeof fd === 'number' && fd > 0, `fd ${String(fd)}`);
  return fd;
}

describe('FUSE handlers', () => {
  it('answer EROFS to every mutating operation', async () => {
    const { ops } = setup();
    const buf = Buffer.alloc(4);
    const calls: Array<[keyof Fuse.Operations, unknown[]]> = [
      ['write', ['/dir/file', 1, buf, 4, 0]],
      ['create', ['/new', 0o644]],
      ['truncate', ['/dir/file', 0]],
      ['ftruncate', ['/dir/file', 1, 0]],
      ['utimens', ['/dir/file', 0, 0]],
      ['chown', ['/dir/file', 1, 1]],
      ['chmod', ['/dir/file', 0o777]],
      ['mknod', ['/dir/new', 0o10644, 0]],
      ['setxattr', ['/dir/file', 'user.x', buf, 0, 0]],
      ['removexattr', ['/attr', 'user.a']],
      ['unlink', ['/dir/file']],
      ['rename', ['/dir/file', '/dir/other']],
      ['link', ['/dir/file', '/dir/hard']],
      ['symlink', ['target', '/dir/sym']],
      ['mkdir', ['/newdir', 0o755]],
      ['rmdir', ['/dir']],
    ];
    for (const [name, args] of calls) {
      const [code] = await call(ops, name, ...args);
      assert.equal(code, EROFS, `${name} answered ${String(code)}`);
    }
  });

  it('open: read-only regular files only, with the right errno otherwise', async () => {
    const { ops } = setup();
    for (const flags of [constants.O_WRONLY, constants.O_RDWR, constants.O_RDONLY | constants.O_TRUNC]) {
      assert.equal((await call(ops, 'open', '/dir/file', flags))[0], EROFS, `flags ${flags}`);
    }
    assert.equal((await call(ops, 'open', '/missing', 0))[0], ENOENT);
    assert.equal((await call(ops, 'open', '/dir', 0))[0], EISDIR);
    assert.equal((await call(ops, 'open', '/dir/link', 0))[0], ELOOP);
    assert.equal((await call(ops, 'open', '/dir/fifo', 0))[0], ENXIO);
    assert.equal((await call(ops, 'open', '/dir/null', 0))[0], ENXIO);
    const a = await openFile(ops, '/dir/file');
    const b = await openFile(ops, '/dir/file');
    assert.notEqual(a, b);
    assert.equal(ops.handles.size, 2);
    await call(ops, 'release', '/dir/file', a);
    await call(ops, 'release', '/dir/file', b);
    assert.equal(ops.handles.size, 0);
  });

  it('read: clips at EOF, returns 0 past it, and copies the right bytes', async () => {
    const { ops } = setup();
    const fd = await openFile(ops, '/dir/file');
    const buf = Buffer.alloc(8, 0xff);
    assert.deepEqual(await call(ops, 'read', '/dir/file', fd, buf, 8, 3), [7]);
    assert.equal(buf.subarray(0, 7).toString(), '3456789');
    assert.deepEqual(await call(ops, 'read', '/dir/file', fd, buf, 8, 10), [0]);
    assert.deepEqual(await call(ops, 'read', '/dir/file', fd, buf, 8, 1_000_000), [0]);
    assert.deepEqual(await call(ops, 'read', '/dir/file', fd, buf, 0, 0), [0]);
  });

  it('read: keeps asking when the layer answers short (chunked)', async () => {
    const { ops, layer } = setup({ chunkSize: 10_000 });
    const fd = await openFile(ops, '/big');
    const buf = Buffer.alloc(131_072);
    const [n] = await call(ops, 'read', '/big', fd, buf, buf.length, 5_000);
    assert.equal(n, 131_072);
    assert.ok(buf.equals(layer.dataOf('/big').subarray(5_000, 5_000 + 131_072)));
    assert.ok(layer.reads.length > 10, `${layer.reads.length} layer reads`);
  });

  it('read: EIO when the layer rejects, throws, or returns nothing inside the file', async () => {
    const broken = (node: FsNode, what: 'reject' | 'throw' | 'empty'): LayerContent => {
      const { layer } = setup();
      return {
        ...layer,
        read: (n, offset, length) => {
          if (n !== node && n.ino !== node.ino) return layer.read(n, offset, length);
          if (what === 'throw') throw new Error('synchronous failure');
          if (what === 'empty') return Promise.resolve(Buffer.alloc(0));
          return Promise.reject(new Error('fetch failed'));
        },
      };
    };
    for (const what of ['reject', 'throw', 'empty'] as const) {
      const base = setup().layer;
      const node = base.lookup('/dir/file') as FsNode;
      const content = broken(node, what);
      const logger = recordingLogger();
      const ops = createOperations(content, logger);
      const [code] = await call(ops, 'read', '/dir/file', 0, Buffer.alloc(4), 4, 0);
      assert.equal(code, EIO, what);
      await call(ops, 'read', '/dir/file', 0, Buffer.alloc(4), 4, 0);
      const errors = logger.records.filter((r) => r.level === 'error');
      assert.equal(errors.length, 1, `${what}: one error log for two failures`);
      assert.equal(errors[0]?.obj.path, '/dir/file');
    }
  });

  it('answer a read that hangs with EIO at the answer deadline, and never touch its buffer afterwards', async () => {
    const base = setup().layer;
    let finish: ((data: Buffer) => void) | undefined;
    const hanging: LayerContent = { ...base, read: () => new Promise<Buffer>((resolve) => (finish = resolve)) };
    const logger = recordingLogger();
    const observed: Array<{ op: string; code: number; timedOut: boolean }> = [];
    const ops = createOperations(hanging, logger, { answerTimeoutMs: 150, observe: (op, _s, code, timedOut) => observed.push({ op, code, timedOut }) });
    const buf = Buffer.alloc(4, 0x2e);
    const started = performance.now();
    const [code] = await call(ops, 'read', '/dir/file', 0, buf, 4, 0);
    const waited = performance.now() - started;
    assert.equal(code, EIO);
    assert.ok(waited >= 140 && waited < 2_000, `answered after ${waited} ms`);
    assert.deepEqual(observed, [{ op: 'read', code: EIO, timedOut: true }]);
    assert.equal(logger.records.filter((r) => r.level === 'warn' && r.obj.op === 'read').length, 1);
    // The fetch ends after the answer: the kernel's buffer (fuse-native reuses it) stays as it was.
    finish?.(Buffer.from('0123'));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(buf.toString(), '....');
    // Requests answered at once are not touched by the deadline.
    assert.equal((await call(ops, 'getattr', '/dir/file'))[0], 0);
  });

  it('answer EIO exactly once when the layer throws', async () => {
    const { layer } = setup();
    const logger = recordingLogger();
    const ops = createOperations(
      {
        ...layer,
        lookup: () => {
          throw new Error('corrupt index');
        },
      },
      logger,
    );
    for (const name of ['getattr', 'readdir', 'readlink', 'listxattr'] as const) {
      assert.equal((await call(ops, name, '/dir'))[0], EIO, name);
    }
    assert.equal(logger.records.filter((r) => r.level === 'error').length, 4);
  });

  it('getattr, readdir, readlink, xattrs, access and statfs', async () => {
    const { ops, layer } = setup();
    assert.equal((await call(ops, 'getattr', '/missing'))[0], ENOENT);
    const [code, st] = (await call(ops, 'getattr', '/dir/null')) as [number, Fuse.Stat];
    assert.equal(code, 0);
    assert.equal(st.mode, constants.S_IFCHR | 0o644);
    assert.equal(st.rdev, 259);

    const [rc, names, stats] = (await call(ops, 'readdir', '/dir')) as [number, string[], Fuse.Stat[]];
    assert.equal(rc, 0);
    assert.deepEqual(names, ['.', '..', 'file', 'link', 'fifo', 'null']);
    assert.equal(stats.length, names.length);
    assert.equal(stats[1]?.ino, layer.root.ino, '.. of /dir is /');
    assert.equal((await call(ops, 'readdir', '/dir/file'))[0], ENOTDIR);
    assert.equal((await call(ops, 'readdir', '/nope'))[0], ENOENT);

    assert.deepEqual(await call(ops, 'readlink', '/dir/link'), [0, 'file']);
    assert.equal((await call(ops, 'readlink', '/dir/file'))[0], EINVAL);

    const [gc, value] = await call(ops, 'getxattr', '/attr', 'user.a', 0);
    assert.equal(gc, 0);
    assert.deepEqual(value, Buffer.from('b'));
    assert.equal((await call(ops, 'getxattr', '/attr', 'user.none', 0))[0], ENODATA);
    assert.deepEqual(await call(ops, 'listxattr', '/attr'), [0, ['user.a']]);

    assert.deepEqual(await call(ops, 'access', '/dir/file', constants.R_OK), [0]);
    assert.deepEqual(await call(ops, 'access', '/dir/file', constants.W_OK), [EROFS]);
    assert.deepEqual(await call(ops, 'access', '/missing', constants.F_OK), [ENOENT]);

    const [sc, sfs] = (await call(ops, 'statfs', '/')) as [number, Fuse.Statfs];
    assert.equal(sc, 0);
    assert.equal(sfs.blocks, Math.ceil(layer.totalSize / sfs.bsize));
    assert.equal(sfs.bfree, 0);
    assert.equal(sfs.bavail, 0);
    assert.equal(sfs.files, 8); // /, /dir, its 4 entries, /big, /attr
  });
});

describe('FUSE support code', () => {
  it('makedev matches glibc for 32-bit device numbers', () => {
    assert.equal(makedev(1, 3), 259);
    assert.equal(makedev(8, 0), 2048);
    assert.equal(makedev(0, 0), 0);
    // glibc: ((minor & 0xfff00) << 12) | ((major & 0xfff) << 8) | (minor & 0xff)
    assert.equal(makedev(300, 70_000), 0x11112c70);
  });

  it('parses mountinfo, including escaped paths and optional fields', () => {
    const text = [
      '22 27 0:21 / /proc rw,relatime - proc proc rw',
      '42 27 0:39 / /tmp/with\\040space/mnt ro,nodev,relatime shared:5 master:1 - fuse.estargz lazysnap ro,allow_other',
      '43 27 0:40 / /var/x rw - overlay overlay rw,lowerdir=/a:/b',
      '',
    ].join('\n');
    const entries = parseMountInfo(text);
    assert.equal(entries.length, 3);
    assert.equal(entries[1]?.mountPoint, '/tmp/with space/mnt');
    assert.equal(entries[1]?.fsType, 'fuse.estargz');
    assert.equal(entries[1]?.source, 'lazysnap');
    assert.deepEqual(entries[1]?.options, ['ro', 'nodev', 'relatime']);
    assert.equal(isFuseType('fuse.estargz'), true);
    assert.equal(isFuseType('fuse'), true);
    assert.equal(isFuseType('fusectl'), false);
    assert.equal(isFuseType('overlay'), false);
  });

  it('mount options carry use_ino, ro, allow_other and validated labels', () => {
    const options = buildMountOptions({ fsname: 'lazysnap', subtype: 'estargz', cacheTimeoutSeconds: 60, debug: false });
    for (const o of ['ro', 'allow_other', 'default_permissions', 'use_ino', 'kernel_cache', 'attr_timeout=60', 'fsname=lazysnap', 'subtype=estargz']) {
      assert.ok(options.includes(o), `missing ${o} in ${options.join(',')}`);
    }
    assert.throws(() => buildMountOptions({ fsname: 'a,rw', subtype: 'x', cacheTimeoutSeconds: 1, debug: false }), /fsname/);
    assert.throws(() => buildMountOptions({ fsname: 'a', subtype: 'x', cacheTimeoutSeconds: -1, debug: false }), /timeout/);
  });
});
