// Calls on one key serialize and waiters get containerd's answer, never a
// spurious failure; calls on different keys proceed in parallel.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../../harness/daemon.js';
import { makeTempDir, removeTree } from '../../harness/process.js';

let work: string;
let daemon: DaemonInstance;

before(async () => {
  work = makeTempDir('concurrency');
  daemon = await startDaemon(join(work, 'daemon'));
});

after(async () => {
  await daemon?.stop();
  removeTree(work);
});

async function settle<T>(promises: Promise<T>[]): Promise<{ ok: number; codes: number[] }> {
  const results = await Promise.allSettled(promises);
  const codes = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as { code: number }).code);
  return { ok: results.length - codes.length, codes };
}

describe('keyed locking', () => {
  it('20 concurrent Prepares of one key: one succeeds, 19 get AlreadyExists', async () => {
    const r = await settle(Array.from({ length: 20 }, () => daemon.client.prepare('same-key', '')));
    assert.equal(r.ok, 1);
    assert.deepEqual(r.codes, Array(19).fill(status.ALREADY_EXISTS));
  });

  it('20 concurrent Commits of one active snapshot to different names: one wins, the rest NotFound', async () => {
    await daemon.client.prepare('commit-race', '');
    const r = await settle(Array.from({ length: 20 }, (_, i) => daemon.client.commit(`commit-race-${i}`, 'commit-race')));
    assert.equal(r.ok, 1);
    assert.deepEqual(r.codes, Array(19).fill(status.NOT_FOUND));
    const committed = (await daemon.client.list(['name~=^commit-race-'])).length;
    assert.equal(committed, 1);
  });

  it('Prepare on a parent racing its Remove never leaves a child without parent', async () => {
    for (let i = 0; i < 10; i++) {
      await daemon.client.prepare(`p${i}-a`, '');
      await daemon.client.commit(`p${i}`, `p${i}-a`);
      const [prep, rem] = await Promise.allSettled([daemon.client.prepare(`c${i}`, `p${i}`), daemon.client.remove(`p${i}`)]);
      assert.ok(prep.status === 'rejected' || rem.status === 'rejected', 'both the child Prepare and the parent Remove succeeded');
      if (prep.status === 'fulfilled') assert.equal((await daemon.client.stat(`c${i}`)).parent, `p${i}`);
    }
  });

  it('200 Prepares on distinct keys from 16 clients all succeed', async () => {
    const r = await settle(Array.from({ length: 200 }, (_, i) => daemon.client.prepare(`distinct-${i}`, '', { n: String(i) })));
    assert.equal(r.ok, 200, `failures: ${r.codes.join(',')}`);
    assert.equal((await daemon.client.list(['labels.n'])).length, 200);
  });
});
