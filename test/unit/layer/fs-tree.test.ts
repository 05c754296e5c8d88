import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openEstargz } from '../../../src/estargz/index.js';
import { FsTree, OPAQUE_XATTR, type RemoteLayer } from '../../../src/layer/index.js';
import { buildBlob, openTestLayer, standardBlob, type TestBlob } from './fixtures.js';

describe('layer file tree', () => {
  let blob: TestBlob;
  let layer: RemoteLayer;

  before(async () => {
    blob = await standardBlob();
    ({ layer } = await openTestLayer(blob));
  });
  after(async () => {
    await layer.close();
  });

  it('hides the landmark and the TOC entry in the root', () => {
    const names = [...layer.root.children!.keys()];
    assert.ok(!names.includes('.no.prefetch.landmark'), `root lists ${names.join(', ')}`);
    assert.ok(!names.includes('.prefetch.landmark'));
    assert.ok(!names.includes('stargz.index.json'));
    assert.equal(layer.lookup('/.no.prefetch.landmark'), undefined);
    // The index itself still knows the landmark: only the view hides it.
    assert.equal(layer.landmark, 'no-prefetch');
    assert.deepEqual(names.sort(), ['a', 'b', 'dev', 'empty', 'etc', 'fifo', 'mid.bin', 'opq', 'tail.bin', 'zeros.bin']);
  });

  it('hides the prefetch landmark of a blob with prioritized files', async () => {
    const { blob: prioritized } = await buildBlob([{ name: 'x.txt', data: Buffer.from('x') }, { name: 'y.txt', data: Buffer.from('y') }], { prioritizedFiles: ['y.txt'] });
    const tree = FsTree.fromIndex(await openEstargz(prioritized));
    assert.deepEqual([...tree.root.children!.keys()].sort(), ['x.txt', 'y.txt']);
  });

  it('turns .wh.NAME into a 0/0 character device named NAME', () => {
    const etc = layer.lookup('/etc')!;
    assert.ok(!etc.children!.has('.wh.gone'));
    const gone = layer.lookup('/etc/gone');
    assert.ok(gone !== undefined, 'whiteout node present');
    assert.equal(gone.type, 'char');
    assert.equal(gone.devMajor, 0);
    assert.equal(gone.devMinor, 0);
    assert.equal(gone.mode, 0);
    assert.equal(layer.lookup('/etc/keep.conf')?.type, 'reg');
  });

  it('turns .wh..wh..opq into trusted.overlay.opaque=y on its directory', () => {
    const opq = layer.lookup('/opq')!;
    assert.deepEqual(opq.xattrs.get(OPAQUE_XATTR), Buffer.from('y'));
    assert.deepEqual([...opq.children!.keys()], ['new.txt']);
    assert.equal(layer.lookup('/etc')!.xattrs.has(OPAQUE_XATTR), false);
  });

  it('gives hardlinks one node with one inode and counts their names', () => {
    const big = layer.lookup('/a/big.bin')!;
    const hl = layer.lookup('/a/hl')!;
    assert.equal(big.ino, hl.ino);
    assert.equal(big.nlink, 2);
    assert.equal(layer.lookup('/a/small.txt')!.nlink, 1);
  });

  it('gives directories 2 + subdirectories links', () => {
    assert.equal(layer.root.nlink, 2 + 5, 'root: a, b, dev, etc, opq');
    assert.equal(layer.lookup('/b')!.nlink, 3);
    assert.equal(layer.lookup('/b/c/d')!.nlink, 2);
    assert.equal(layer.lookup('/opq')!.nlink, 2);
  });

  it('resolves absolute and relative paths, and nothing outside', () => {
    assert.equal(layer.lookup('/')?.ino, layer.root.ino);
    assert.equal(layer.lookup('')?.ino, layer.root.ino);
    assert.equal(layer.lookup('/b/c/d/deep.txt')?.ino, layer.lookup('b/c/d/deep.txt')!.ino);
    assert.equal(layer.lookup('/b/./c/d/deep.txt')?.ino, layer.lookup('/b/c/d/deep.txt')!.ino);
    assert.equal(layer.lookup('/missing'), undefined);
    assert.equal(layer.lookup('/a/small.txt/x'), undefined);
    assert.equal(layer.lookup('/a/../a/small.txt'), undefined);
  });

  it('keeps symlinks, devices, fifos and file metadata', () => {
    const sym = layer.lookup('/a/sym')!;
    assert.equal(sym.type, 'symlink');
    assert.equal(sym.linkName, 'small.txt');
    assert.equal(sym.size, 'small.txt'.length);
    const dev = layer.lookup('/dev/null0')!;
    assert.deepEqual([dev.type, dev.devMajor, dev.devMinor, dev.mode], ['char', 1, 3, 0o666]);
    assert.equal(layer.lookup('/fifo')!.type, 'fifo');
    const small = layer.lookup('/a/small.txt')!;
    assert.equal(small.mode, 0o644);
    assert.equal(small.mtimeMs, 1_700_000_000_000);
    assert.equal(small.size, 90);
    // Every name has its own inode, but for hardlinked names, which share their target's.
    const inos = new Map<number, string>();
    const walk = (node: typeof layer.root, path: string): void => {
      const known = inos.get(node.ino);
      if (known !== undefined) assert.ok(node.type === 'reg' && node.nlink > 1, `inode ${node.ino} used by ${known} and ${path}`);
      inos.set(node.ino, path);
      for (const [name, child] of node.children ?? []) walk(child, `${path}/${name}`);
    };
    walk(layer.root, '');
    assert.equal(layer.lookup('/a/big.bin')!.ino, layer.lookup('/a/hl')!.ino);
  });

  it('reports the total size of distinct regular files', () => {
    const expected = blob.files.filter((f) => (f.type ?? 'file') === 'file' && !f.name.includes('.wh.')).reduce((n, f) => n + (f.data?.length ?? 0), 0);
    assert.equal(layer.totalSize, expected);
  });
});
