// Lazy layers as a user meets them: eStargz layers converted by
// `lazysnap convert`, served by a real registry, mounted over FUSE by the
// daemon's mounter, compared file by file with the same layers unpacked by
// tar and by containerd.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, chownSync, mkdirSync, readFileSync, symlinkSync, linkSync, utimesSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { startRegistry, type RegistryInstance } from '../../harness/registry.js';
import { startContainerd, type ContainerdInstance } from '../../harness/containerd.js';
import { buildImage, pushImage } from '../../harness/image.js';
import { lazysnapCli } from '../../harness/lazysnap-cli.js';
import { makeTempDir, removeTree } from '../../harness/process.js';
import { diffTrees, treeManifest } from '../../harness/tree-manifest.js';
import { RegistryClient, type Descriptor } from '../../../src/registry/index.js';
import { ChunkCache } from '../../../src/layer/index.js';
import { EstargzMounter } from '../../../src/snapshotter/remote/estargz-mounter.js';
import type { RemoteLayerRef } from '../../../src/snapshotter/metadata-store.js';
import { STARGZ_TOC_DIGEST } from '../../../src/containerd/labels.js';
import { isMounted } from '../../../src/fuse/index.js';
import { leaveStaleMounts } from '../fuse/mount-child-process.js';

let work: string;
let registry: RegistryInstance;
let client: RegistryClient;
let mounter: EstargzMounter;
let plainRef: string;
let esgzRef: string;
let layerDirs: string[];
let layers: Descriptor[];
const mounted: Array<[EstargzMounter, RemoteLayerRef, string]> = [];
const mounters: EstargzMounter[] = [];
const mountpoints: string[] = [];
const logger = pino({ level: 'silent' });
// Anything that may touch a FUSE mount this process serves must not block the event loop.
const execAsync = promisify(execFile);

/** Layer 0: every kind of file; layer 1: whiteout, opaque dir, changes. */
function buildTrees(base: string): string[] {
  const l0 = join(base, 'l0');
  mkdirSync(join(l0, 'etc', 'conf.d'), { recursive: true });
  writeFileSync(join(l0, 'etc', 'hosts'), '127.0.0.1 localhost\n');
  writeFileSync(join(l0, 'etc', 'gone.txt'), 'to be whited out\n');
  writeFileSync(join(l0, 'etc', 'conf.d', 'a.conf'), 'a=1\n');
  mkdirSync(join(l0, 'data', 'old'), { recursive: true });
  writeFileSync(join(l0, 'data', 'old', 'x'), 'hidden by opaque\n');
  mkdirSync(join(l0, 'bin'));
  writeFileSync(join(l0, 'bin', 'tool'), Buffer.alloc(3 * 1024 * 1024 + 17, 0xab));
  chmodSync(join(l0, 'bin', 'tool'), 0o4755);
  const random = Buffer.alloc(5 * 1024 * 1024);
  for (let i = 0; i < random.length; i += 4) random.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(join(l0, 'bin', 'big'), random);
  writeFileSync(join(l0, 'empty'), '');
  symlinkSync('etc/hosts', join(l0, 'hosts-link'));
  symlinkSync('/nonexistent/target', join(l0, 'dangling'));
  linkSync(join(l0, 'bin', 'tool'), join(l0, 'bin', 'tool-hardlink'));
  writeFileSync(join(l0, 'owned'), 'owned by 1234:5678\n');
  chownSync(join(l0, 'owned'), 1234, 5678);
  chmodSync(join(l0, 'owned'), 0o640);
  execFileSync('mkfifo', [join(l0, 'fifo')]);
  execFileSync('mknod', [join(l0, 'null-dev'), 'c', '1', '3']);
  execFileSync('/usr/bin/python3', ['-c', `import os; os.setxattr(${JSON.stringify(join(l0, 'etc', 'hosts'))}, 'user.origin', b'lazysnap-test')`]);
  utimesSync(join(l0, 'etc', 'hosts'), 1_000_000_000, 1_000_000_000);
  const l1 = join(base, 'l1');
  mkdirSync(join(l1, 'etc'), { recursive: true });
  writeFileSync(join(l1, 'etc', '.wh.gone.txt'), '');
  mkdirSync(join(l1, 'data'), { recursive: true });
  writeFileSync(join(l1, 'data', '.wh..wh..opq'), '');
  mkdirSync(join(l1, 'data', 'new'));
  writeFileSync(join(l1, 'data', 'new', 'y'), 'from the upper layer\n');
  writeFileSync(join(l1, 'etc', 'hosts'), '10.0.0.1 changed\n');
  // eStargz TOCs keep whole seconds, rounded as stargz-snapshotter rounds them, while a
  // pax tar keeps fractions that tar truncates: give every file a whole-second mtime.
  execFileSync('/usr/bin/python3', ['-c', 'import os,sys\nfor top in sys.argv[1:]:\n  for d, ds, fs in os.walk(top, topdown=False):\n    for n in ds + fs + [""]:\n      p = os.path.join(d, n) if n else d\n      st = os.lstat(p)\n      os.utime(p, ns=(st.st_atime_ns // 10**9 * 10**9, st.st_mtime_ns // 10**9 * 10**9), follow_symlinks=False)', l0, l1]);
  return [l0, l1];
}

/** A mounter with its own empty cache, as a fresh daemon would have. */
async function newMounter(name: string): Promise<EstargzMounter> {
  const cache = await ChunkCache.open({ memoryBytes: 64 << 20, diskDir: join(work, name, 'chunks'), diskBytes: 256 << 20, logger });
  const m = new EstargzMounter({
    registry: new RegistryClient({ timeouts: { requestMs: 3000 }, retry: { maxAttempts: 2 } }),
    mountRoot: join(work, name, 'layers'),
    cache,
    tocCacheDir: join(work, name, 'tocs'),
    logger,
    metrics: new Registry(),
    allowUnverified: false,
    fetchTimeoutMs: 3000,
    prefetch: false,
    backgroundFetch: false,
    backgroundFetchConcurrency: 1,
  });
  mounters.push(m);
  return m;
}

/** Mounts a layer through the mounter (as the snapshotter does) and returns where it is mounted. */
async function mountLayer(index: number, layer: Descriptor = layers[index]!, tocDigest?: string, using: EstargzMounter = mounter): Promise<string> {
  const ref = await using.resolve({ protocol: 'remote-snapshot', ref: esgzRef, layerDigest: layer.digest, ...(tocDigest ? { tocDigest } : {}) });
  assert.ok(ref, `layer ${index} was not accepted as remote`);
  const holder = `snapshot-${mounted.length}`;
  const path = await using.acquire(ref, holder);
  mounted.push([using, ref, holder]);
  return path;
}

before(async () => {
  work = makeTempDir('lazy-layer');
  registry = await startRegistry(work);
  layerDirs = buildTrees(join(work, 'trees'));
  const image = buildImage(join(work, 'oci'), 'v1', layerDirs.map((dir) => ({ dir })));
  plainRef = pushImage(image, registry.host, 'lazy/layers:plain');
  esgzRef = `${registry.host}/lazy/layers:esgz`;
  await lazysnapCli(['convert', '--chunk-size', '1048576', '--compression-level', '1', plainRef, esgzRef]);
  client = new RegistryClient();
  layers = (await client.resolve(esgzRef)).manifest.layers;
  mounter = await newMounter('cache');
});

after(async () => {
  for (const [m, ref, holder] of mounted.reverse()) await m.release(ref, holder).catch(() => undefined);
  for (const m of mounters) await m.close();
  await client?.close();
  await registry?.stop();
  removeTree(work);
});

describe('lazily fetched eStargz layers over FUSE', () => {
  it('each mounted layer equals the layer unpacked by tar: contents, modes, owners, mtimes, links, xattrs, devices', async () => {
    for (const index of [0, 1]) {
      const mnt = await mountLayer(index);
      mountpoints[index] = mnt;
      const extracted = join(work, `tar-${index}`);
      mkdirSync(extracted);
      execFileSync('tar', ['--xattrs', "--xattrs-include=*", '--numeric-owner', '-xpzf', join(work, 'oci', `layer-${index}.tar.gz`), '-C', extracted]);
      const expected = await treeManifest(extracted);
      const actual = await treeManifest(mnt);
      if (index === 1) {
        // The lazy layer shows OCI whiteouts the way overlayfs wants them (as an unpacked layer does on overlayfs).
        assert.equal(actual['etc/gone.txt']?.type, 'char');
        assert.equal(actual['etc/gone.txt']?.rdev, 0);
        assert.equal(actual['data']?.xattrs['trusted.overlay.opaque'], Buffer.from('y').toString('hex'));
        delete expected['etc/.wh.gone.txt'];
        delete expected['data/.wh..wh..opq'];
        delete actual['etc/gone.txt'];
        delete actual['data']!.xattrs['trusted.overlay.opaque'];
      }
      assert.deepEqual(diffTrees(expected, actual), []);
    }
  });

  it('two lazy layers stacked by overlayfs equal containerd\'s own unpack of the image', async () => {
    const containerd: ContainerdInstance = await startContainerd(join(work, 'ctrd'));
    const overlay = join(work, 'overlay');
    const theirs = join(work, 'theirs');
    mkdirSync(overlay);
    mkdirSync(theirs);
    try {
      await containerd.ctr(['images', 'pull', '--plain-http', plainRef]);
      // Let the GC pass that the end of the pull scheduled run before we create an unreferenced view.
      await new Promise((r) => setTimeout(r, 1500));
      const chains = (await containerd.ctr(['snapshots', 'ls'])).trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
      // Rows are KEY [PARENT] KIND: the top layer is the one with a parent.
      const top = chains.find((c) => c.length === 3)![0]!;
      // The pull's lease is gone and containerd's GC may run any moment: pin the view with a root label at once.
      const mountCommand = (await containerd.ctr(['snapshots', 'view', '--target', theirs, 'compare-view', top])).trim();
      await containerd.ctr(['snapshots', 'label', 'compare-view', `containerd.io/gc.root=${new Date().toISOString()}`]);
      await containerd.ctr(['snapshots', 'label', top, `containerd.io/gc.root=${new Date().toISOString()}`]);
      execFileSync('/bin/sh', ['-c', mountCommand]);
      await execAsync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${mountpoints[1]}:${mountpoints[0]}`, overlay]);
      assert.deepEqual(diffTrees(await treeManifest(theirs), await treeManifest(overlay)), []);
      assert.equal(await readFile(join(overlay, 'etc', 'hosts'), 'utf8'), '10.0.0.1 changed\n');
    } finally {
      await execAsync('umount', [overlay]).catch(() => undefined);
      await execAsync('umount', [theirs]).catch(() => undefined);
      await containerd.stop();
    }
  });

  it('a corrupted chunk gives EIO for its file only; no wrong byte is ever served', async () => {
    const layer = layers[0]!;
    const blob = await client.fetchBlob(esgzRef, layer.digest);
    const tocDigest = layer.annotations![STARGZ_TOC_DIGEST]!;
    // Flip a byte in the middle of the blob: inside the compressed data of the big files.
    const corrupted = Buffer.from(blob);
    const at = Math.floor(blob.length / 3);
    corrupted[at] = corrupted[at]! ^ 0xff;
    const pushed = await client.pushBlob(esgzRef, corrupted);
    // A fresh cache: chunks are cached by digest, and the good layer's chunks must not mask the corruption.
    const mnt = await mountLayer(0, { ...layer, digest: pushed.digest, size: corrupted.length }, tocDigest, await newMounter('cache-corrupt'));
    const results = await Promise.allSettled(['bin/big', 'bin/tool'].map((f) => readFile(join(mnt, f))));
    const failed = results.filter((r) => r.status === 'rejected');
    assert.ok(failed.length >= 1, 'the corrupted chunk was served');
    for (const r of failed) assert.equal(((r as PromiseRejectedResult).reason as NodeJS.ErrnoException).code, 'EIO');
    for (const [i, r] of results.entries()) {
      if (r.status === 'fulfilled') assert.deepEqual(r.value, readFileSync(join(layerDirs[0]!, ['bin/big', 'bin/tool'][i]!)));
    }
    assert.equal(await readFile(join(mnt, 'etc', 'hosts'), 'utf8'), '127.0.0.1 localhost\n');
  });

  it('a dead mount left at a layer\'s mountpoint (a manager that was killed) is taken down, and the layer mounts there again', async () => {
    const using = await newMounter('cache-stale');
    const ref = await using.resolve({ protocol: 'remote-snapshot', ref: esgzRef, layerDigest: layers[0]!.digest });
    assert.ok(ref);
    const mountpoint = await using.acquire(ref, 'first');
    await using.release(ref, 'first');
    await leaveStaleMounts([mountpoint]);
    assert.equal(await isMounted(mountpoint), true, 'test setup: a dead mount should be left at the mountpoint');
    assert.equal(await using.acquire(ref, 'second'), mountpoint);
    mounted.push([using, ref, 'second']);
    assert.equal(await readFile(join(mountpoint, 'etc', 'hosts'), 'utf8'), '127.0.0.1 localhost\n');
    const fuseMounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((line) => line.split(' ')[4] === mountpoint);
    assert.equal(fuseMounts.length, 1, `one mount at the mountpoint, not one stacked on the dead one:\n${fuseMounts.join('\n')}`);
  });

  it('registry down after mount: uncached reads fail with EIO within the deadline, cached data is served, reads recover', async () => {
    const mnt = await mountLayer(0, layers[0], undefined, await newMounter('cache-down'));
    const cached = await readFile(join(mnt, 'etc', 'conf.d', 'a.conf'), 'utf8');
    await registry.stop();
    try {
      const started = Date.now();
      await assert.rejects(readFile(join(mnt, 'bin', 'big')), (err: NodeJS.ErrnoException) => err.code === 'EIO');
      assert.ok(Date.now() - started < 15_000, `EIO took ${Date.now() - started} ms`);
      assert.equal(await readFile(join(mnt, 'etc', 'conf.d', 'a.conf'), 'utf8'), cached);
    } finally {
      await registry.restart();
    }
    assert.deepEqual(await readFile(join(mnt, 'bin', 'big')), readFileSync(join(layerDirs[0]!, 'bin', 'big')));
  });
});
