import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { lockRoot } from '../../../src/snapshotter/root-lock.js';
import { makeTempDir, removeTree } from '../../harness/process.js';

describe('root lock', () => {
  const work = makeTempDir('root-lock');
  after(() => removeTree(work));

  it('stays current while its lock file is there, and not once the root is removed', async () => {
    const root = join(work, 'removed');
    const lock = await lockRoot(root);
    try {
      assert.equal(lock.isCurrent(), true);
      rmSync(root, { recursive: true, force: true });
      assert.equal(lock.isCurrent(), false);
    } finally {
      lock.release();
    }
  });

  it('is not current once the root was removed and made again, though a lock file is there again', async () => {
    // A FUSE manager checked only that ROOT/lock existed: after a quick wipe and restart, old managers kept running beside the new one.
    const root = join(work, 'remade');
    const old = await lockRoot(root);
    try {
      rmSync(root, { recursive: true, force: true });
      const fresh = await lockRoot(root);
      try {
        assert.equal(old.isCurrent(), false);
        assert.equal(fresh.isCurrent(), true);
      } finally {
        fresh.release();
      }
    } finally {
      old.release();
    }
  });
});
