import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildMounts } from '../../../src/snapshotter/mounts.js';
import { validateLabels } from '../../../src/snapshotter/labels.js';
import { InvalidArgumentError } from '../../../src/snapshotter/errors.js';
import { Kind } from '../../../src/snapshotter/types.js';

const layout = { upperPath: (id: number) => `/r/snapshots/${id}/fs`, workPath: (id: number) => `/r/snapshots/${id}/work` };

describe('mounts as containerd overlayfs builds them', () => {
  it('bind mounts where there is nothing to stack', () => {
    assert.deepEqual(buildMounts(Kind.Active, 1, [], layout, { indexOff: true, userxattr: false }), [{ type: 'bind', source: '/r/snapshots/1/fs', options: ['rw', 'rbind'] }]);
    assert.deepEqual(buildMounts(Kind.View, 2, [], layout, { indexOff: true, userxattr: false }), [{ type: 'bind', source: '/r/snapshots/2/fs', options: ['ro', 'rbind'] }]);
    assert.deepEqual(buildMounts(Kind.View, 3, [7], layout, { indexOff: true, userxattr: false }), [{ type: 'bind', source: '/r/snapshots/7/fs', options: ['ro', 'rbind'] }]);
  });

  it('overlay with nearest parent first, upper and work for active snapshots', () => {
    assert.deepEqual(buildMounts(Kind.Active, 9, [8, 5, 1], layout, { indexOff: true, userxattr: false }), [
      { type: 'overlay', source: 'overlay', options: ['index=off', 'workdir=/r/snapshots/9/work', 'upperdir=/r/snapshots/9/fs', 'lowerdir=/r/snapshots/8/fs:/r/snapshots/5/fs:/r/snapshots/1/fs'] },
    ]);
    assert.deepEqual(buildMounts(Kind.View, 9, [8, 5], layout, { indexOff: false, userxattr: false }), [
      { type: 'overlay', source: 'overlay', options: ['lowerdir=/r/snapshots/8/fs:/r/snapshots/5/fs'] },
    ]);
  });
});

describe('label validation', () => {
  it('allows exactly 4096 bytes of key and value, counted in bytes', () => {
    validateLabels({ k: 'v'.repeat(4095) }, 't');
    assert.throws(() => validateLabels({ k: 'v'.repeat(4096) }, 't'), InvalidArgumentError);
    assert.throws(() => validateLabels({ k: 'é'.repeat(2048) }, 't'), InvalidArgumentError);
    assert.throws(() => validateLabels({ '': 'v' }, 't'), /label key must not be empty/);
  });
});
