// The daemon's pull warm-up: it runs the registry half of a pull (resolve,
// config) against its own loopback server, and gives way to real work.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { warmUpPullPath } from '../../../src/pull/warm-up.js';

describe('pull warm-up', () => {
  it('resolves a made-up image and fetches its config through a real registry client', async () => {
    const result = await warmUpPullPath({ busy: () => false });
    assert.deepEqual(result.steps, ['resolve', 'config']);
    assert.equal(result.stoppedAt, undefined);
  });

  it('stops before its next step once a pull has come', async () => {
    const idle = await warmUpPullPath({ busy: () => true });
    assert.deepEqual(idle.steps, []);
    assert.equal(idle.stoppedAt, 'start');
    let asked = 0;
    // Busy from the second question on: the pull came while the image was being resolved.
    const cut = await warmUpPullPath({ busy: () => asked++ > 0 });
    assert.deepEqual(cut.steps, ['resolve']);
    assert.equal(cut.stoppedAt, 'after resolve');
  });
});
