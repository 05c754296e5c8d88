// List filters are Go regular expressions in containerd: a pattern that makes
// a backtracking engine explode must neither stall List nor the calls around it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../../harness/daemon.js';
import { makeTempDir, removeTree } from '../../harness/process.js';
import { SnapshotsClient } from '../../../src/containerd/snapshots-client.js';

const CATASTROPHIC = 'name~="^(a+)+$"';
/** The bound for the catastrophic filter. A backtracking engine needs hours on these names. */
const ANSWER_BOUND_MS = 100;

let work: string;
let daemon: DaemonInstance;
/** Short deadlines: on a stalled daemon the calls fail instead of waiting for hours. */
let client: SnapshotsClient;

before(async () => {
  work = makeTempDir('list-filters');
  daemon = await startDaemon(join(work, 'daemon'));
  client = new SnapshotsClient({ address: daemon.socket, timeoutMs: 5_000 });
  for (const n of [41, 64, 1000]) {
    await daemon.client.prepare('a'.repeat(n), '');
    await daemon.client.prepare(`${'a'.repeat(n)}-active`, '');
  }
  await daemon.client.prepare('other', '');
});

after(async () => {
  client?.close();
  await daemon?.stop();
  removeTree(work);
});

async function timed<T>(call: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const start = performance.now();
  const result = await call();
  return { result, ms: performance.now() - start };
}

describe('List with regular expression filters', () => {
  it(`answers the catastrophic filter "^(a+)+$" within ${ANSWER_BOUND_MS} ms, with RE2's answer`, async () => {
    // The fastest of three calls: scheduling noise on a busy machine can delay any one call.
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await timed(() => client.list([CATASTROPHIC])));
    assert.deepEqual(runs[0]!.result.map((info) => info.name.length).sort((a, b) => a - b), [41, 64, 1000]);
    const fastest = Math.min(...runs.map((run) => run.ms));
    assert.ok(fastest < ANSWER_BOUND_MS, `List took ${fastest.toFixed(1)} ms`);
  });

  it('keeps Stat responsive while such Lists run', async () => {
    const lists = Array.from({ length: 4 }, () => client.list([CATASTROPHIC, 'name~="^(a|aa)+$"']));
    const stat = await timed(() => client.stat('other'));
    assert.equal(stat.result.name, 'other');
    assert.ok(stat.ms < 1_000, `Stat took ${stat.ms.toFixed(1)} ms`);
    for (const listed of await Promise.all(lists)) assert.equal(listed.length, 3);
  });

  it('rejects patterns Go cannot compile, and oversized filters, with InvalidArgument', async () => {
    for (const filters of [['name~="(?=a)"'], ['name~="(a)\\\\1"'], [`name==${'x'.repeat(50_000)}`], Array.from({ length: 33 }, (_, i) => `name==k${i}`)]) {
      await assert.rejects(client.list(filters), (err: { code?: number }) => err.code === status.INVALID_ARGUMENT);
    }
  });
});
