// containerd's bolt store takes snapshot keys up to 32 KiB (bbolt's
// MaxKeySize); LMDB alone refuses anything over 1978 bytes. Long keys work
// through every call and a restart; longer ones are InvalidArgument.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../../harness/daemon.js';
import { makeTempDir, removeTree } from '../../harness/process.js';

const MAX_KEY_BYTES = 32_768;

let work: string;
let daemon: DaemonInstance;

before(async () => {
  work = makeTempDir('long-keys');
  daemon = await startDaemon(join(work, 'daemon'));
});

after(async () => {
  await daemon?.stop();
  removeTree(work);
});

function grpcCode(code: number, messageIncludes?: string) {
  return (err: unknown) => {
    const { code: actual, details } = err as { code?: number; details?: string };
    assert.equal(actual, code, `expected gRPC code ${status[code]}, got ${String(err)}`);
    if (messageIncludes !== undefined) assert.ok(details?.includes(messageIncludes), `message ${details} does not name ${messageIncludes}`);
    return true;
  };
}

/** A key of exactly `bytes` bytes, distinct per tag. */
function longKey(tag: string, bytes: number): string {
  return `${tag}-`.padEnd(bytes, 'k');
}

describe('long snapshot keys', () => {
  for (const bytes of [3_000, MAX_KEY_BYTES]) {
    it(`a ${bytes}-byte key works through Prepare, Commit, View, Mounts, Stat, Update, List, Remove and a restart`, async () => {
      const active = longKey(`active${bytes}`, bytes);
      const committed = longKey(`committed${bytes}`, bytes);
      const child = longKey(`child${bytes}`, bytes);
      const view = longKey(`view${bytes}`, bytes);
      let client = daemon.client;

      await client.prepare(active, '', { size: String(bytes) });
      assert.equal((await client.stat(active)).name, active);
      await client.commit(committed, active);
      await assert.rejects(client.stat(active), grpcCode(status.NOT_FOUND));
      await client.prepare(child, committed);
      await client.view(view, committed);
      assert.equal((await client.mounts(child))[0]!.type, 'overlay');
      assert.equal((await client.mounts(view))[0]!.type, 'bind');
      const updated = await client.update({ name: committed, labels: { size: String(bytes), updated: 'yes' } });
      assert.equal(updated.name, committed);
      await assert.rejects(client.prepare(child, committed), grpcCode(status.ALREADY_EXISTS));

      await daemon.stop();
      daemon = await startDaemon(join(work, 'daemon'));
      client = daemon.client;

      const listed = await client.list([`labels.size==${bytes}`]);
      assert.deepEqual(listed.map((info) => info.name).sort(), [committed]);
      assert.deepEqual(listed[0]!.labels, { size: String(bytes), updated: 'yes' });
      assert.equal((await client.stat(child)).parent, committed);
      assert.deepEqual((await client.list([`parent==${committed}`])).map((info) => info.name).sort(), [child, view].sort());
      await assert.rejects(client.remove(committed), grpcCode(status.FAILED_PRECONDITION));
      await client.remove(child);
      await client.remove(view);
      await client.remove(committed);
      await assert.rejects(client.stat(committed), grpcCode(status.NOT_FOUND));
    });
  }

  it('a key longer than 32 KiB is InvalidArgument naming the limit, in every call', async () => {
    const client = daemon.client;
    await client.prepare('lk-base-a', '');
    await client.commit('lk-base', 'lk-base-a');
    for (const bytes of [MAX_KEY_BYTES + 1, 100 * 1024]) {
      const key = longKey(`over${bytes}`, bytes);
      const limit = grpcCode(status.INVALID_ARGUMENT, String(MAX_KEY_BYTES));
      await assert.rejects(client.prepare(key, ''), limit);
      await assert.rejects(client.view(key, 'lk-base'), limit);
      await assert.rejects(client.prepare('lk-child', key), limit);
      await assert.rejects(client.commit(key, 'lk-base'), limit);
      await assert.rejects(client.stat(key), limit);
      await assert.rejects(client.mounts(key), limit);
      await assert.rejects(client.update({ name: key, labels: {} }), limit);
      await assert.rejects(client.remove(key), limit);
    }
  });
});
