// containerd's snapshotter test suite (Update) reads a nanosecond clock
// before and after a call and requires the snapshot's time to lie strictly
// between the readings. The readings here are Node's own realtime clock
// (performance.timeOrigin, read from gettimeofday at start, plus the
// monotonic clock), taken right around the call as Go's time.Now() is: a
// reading from date(1) takes milliseconds and would hide millisecond rounding.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../../harness/daemon.js';
import { makeTempDir, removeTree } from '../../harness/process.js';
import type { Timestamp } from '../../../src/containerd/types.js';

const RUNS = 20;

let work: string;
let daemon: DaemonInstance;

before(async () => {
  work = makeTempDir('timestamps');
  daemon = await startDaemon(join(work, 'daemon'));
});

after(async () => {
  await daemon?.stop();
  removeTree(work);
});

function realtimeNs(): bigint {
  return BigInt(Math.round(performance.timeOrigin * 1e3)) * 1_000n + BigInt(Math.round(performance.now() * 1e6));
}

function toNs(ts: Timestamp | null): bigint {
  assert.ok(ts, 'timestamp missing');
  assert.ok(ts.nanos >= 0 && ts.nanos < 1e9, `nanos ${ts.nanos} out of range`);
  return BigInt(ts.seconds) * 1_000_000_000n + BigInt(ts.nanos);
}

function assertBetween(what: string, t1: bigint, time: bigint, t2: bigint): void {
  assert.ok(t1 < time && time < t2, `${what} ${time} not strictly between ${t1} and ${t2}`);
}

describe('created and updated times have nanosecond precision', () => {
  it('the test\'s clock agrees with the system\'s realtime clock', () => {
    const before = realtimeNs();
    const system = BigInt(execFileSync('date', ['+%s%N'], { encoding: 'utf8' }).trim());
    const after = realtimeNs();
    assert.ok(before - 1_000_000n < system && system < after + 1_000_000n, `date says ${system}, the test clock ${before}..${after}`);
  });

  it(`Prepare, Update and Commit times lie strictly between clock readings around the call, ${RUNS} runs in a row`, async () => {
    const client = daemon.client;
    const times: bigint[] = [];
    for (let run = 0; run < RUNS; run++) {
      const key = `ts-${run}`;
      let t1 = realtimeNs();
      await client.prepare(key, '');
      let t2 = realtimeNs();
      const prepared = await client.stat(key);
      assertBetween(`run ${run}: created`, t1, toNs(prepared.createdAt), t2);
      assert.deepEqual(prepared.updatedAt, prepared.createdAt);

      t1 = realtimeNs();
      const updated = await client.update({ name: key, labels: { run: String(run) } });
      t2 = realtimeNs();
      assertBetween(`run ${run}: updated`, t1, toNs(updated.updatedAt), t2);
      assert.deepEqual(updated.createdAt, prepared.createdAt);
      assert.deepEqual((await client.stat(key)).updatedAt, updated.updatedAt);

      t1 = realtimeNs();
      await client.commit(`${key}-committed`, key);
      t2 = realtimeNs();
      const committed = await client.stat(`${key}-committed`);
      assertBetween(`run ${run}: committed created`, t1, toNs(committed.createdAt), t2);
      assertBetween(`run ${run}: committed updated`, t1, toNs(committed.updatedAt), t2);
      times.push(toNs(prepared.createdAt), toNs(updated.updatedAt), toNs(committed.createdAt));
    }
    // Times rounded to milliseconds can pass a single check by luck, never sixty.
    assert.ok(times.some((time) => time % 1_000_000n !== 0n), 'every time is a whole millisecond');
  });
});
