import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, TOC_TAR_NAME, openEstargz } from '../../../src/estargz/index.js';
import { convert } from './helpers.js';
import { describeTree, makeTree, type Facts } from './tree-fixture.js';

const TAR = ['/bin/tar', '/usr/bin/tar'].find((p) => existsSync(p));

function assertSameTree(expected: Map<string, Facts>, actual: Map<string, Facts>, ignoreDirMtimes: boolean): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  const inodes = new Map<number, number>();
  for (const [path, want] of expected) {
    const got = actual.get(path)!;
    const { ino: wantIno, ...wantRest } = want;
    const { ino: gotIno, ...gotRest } = got;
    if (ignoreDirMtimes && want.type === 0o040000) gotRest.mtime = wantRest.mtime;
    assert.deepEqual(gotRest, wantRest, path);
    // Hardlinked names must stay one inode after extraction.
    if (want.type === 0o100000) {
      if (inodes.has(wantIno)) assert.equal(gotIno, inodes.get(wantIno), `${path} is still hardlinked`);
      else inodes.set(wantIno, gotIno);
    }
  }
}

describe('eStargz blobs extracted with GNU tar', { skip: TAR === undefined ? 'no tar binary' : false }, () => {
  let work = '';
  let devices = false;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'lazysnap-estargz-gnutar-'));
    mkdirSync(join(work, 'src'));
    ({ devices } = makeTree(join(work, 'src')));
    execFileSync(TAR!, ['--format=pax', '--numeric-owner', '-C', join(work, 'src'), '-cf', join(work, 'in.tar'), '.']);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const prioritized of [[], ['usr/bin/sh', 'etc/big-link2', 'usr/ünïcødé.txt']]) {
    it(`unpacks to exactly the input tree${prioritized.length > 0 ? ' with prioritized files' : ''}`, async () => {
      const out = join(work, `out-${prioritized.length}`);
      mkdirSync(out);
      const { blob, result } = await convert(readFileSync(join(work, 'in.tar')), { chunkSize: 65_536, compressionLevel: 6, prioritizedFiles: prioritized });
      writeFileSync(join(work, 'blob.tar.gz'), blob);
      execFileSync(TAR!, ['--numeric-owner', '-xzf', join(work, 'blob.tar.gz'), '-C', out]);

      const landmark = prioritized.length > 0 ? PREFETCH_LANDMARK : NO_PREFETCH_LANDMARK;
      assert.deepEqual(readFileSync(join(out, landmark)), Buffer.from([0x0f]));
      assert.equal(readFileSync(join(out, TOC_TAR_NAME)).length > 0, true);
      const expected = describeTree(join(work, 'src'));
      const actual = describeTree(out, new Set([landmark, TOC_TAR_NAME]));
      // GNU tar settles a directory's mtime when it leaves the directory, so moving a
      // prioritized directory entry ahead of its other children changes that mtime
      // (stargz-snapshotter's blobs behave the same; containerd sets directory times last).
      assertSameTree(expected, actual, prioritized.length > 0);
      if (devices) assert.equal(actual.get('usr/null')?.type, 0o020000);

      // And the index agrees with what tar produced.
      const index = await openEstargz(blob, { expectedTocDigest: result.tocDigest });
      for (const [path, facts] of expected) {
        const node = index.lookup(path);
        assert.ok(node !== undefined, path);
        assert.equal(node.statMode & 0o170000, facts.type, path);
        assert.equal(node.mode & 0o7777, facts.mode, path);
        assert.equal(node.uid, facts.uid, path);
        assert.equal(node.size, facts.size, path);
      }
      assert.equal(index.lookup('usr/bin/big')!.ino, index.lookup('etc/big-link2')!.ino);
      assert.equal(index.lookup('usr/bin/big')!.nlink, 3);
      assert.equal(index.lookup('usr/bin/big')!.chunks.length, 4);
      assert.equal(index.lookup('usr/bin/exact')!.chunks.length, 2);
    });
  }
});
