// A daemon killed with SIGKILL in the middle of a concurrent
// Prepare/Commit/Remove load must come back with consistent metadata: every
// snapshot has its directory and its data, every parent exists, and Cleanup
// leaves exactly one directory per snapshot.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../../harness/daemon.js';
import { makeTempDir, removeTree } from '../../harness/process.js';
import type { MountMessage, SnapshotsClient } from '../../../src/containerd/snapshots-client.js';

let work: string;
let daemon: DaemonInstance | undefined;

before(() => {
  work = makeTempDir('crash');
});

after(async () => {
  await daemon?.stop();
  removeTree(work);
});

function upperDir(mounts: MountMessage[]): string {
  const m = mounts[0]!;
  if (m.type === 'bind') return m.source;
  return m.options.find((o) => o.startsWith('upperdir='))!.slice('upperdir='.length);
}

/** One worker: builds short chains, commits, removes, until stopped or the daemon dies. */
async function worker(client: SnapshotsClient, id: number, round: number, stop: { now: boolean }): Promise<number> {
  let done = 0;
  let parent = '';
  for (let i = 0; !stop.now; i++) {
    const name = `r${round}-w${id}-${i}`;
    try {
      const mounts = await client.prepare(`${name}-active`, parent);
      writeFileSync(join(upperDir(mounts), 'whoami'), name);
      await client.commit(name, `${name}-active`);
      if (i % 3 === 2) {
        await client.remove(name);
        parent = '';
      } else {
        parent = name;
      }
      done++;
    } catch {
      return done;
    }
  }
  return done;
}

async function checkConsistency(d: DaemonInstance): Promise<number> {
  const client = d.client;
  const infos = await client.list();
  const names = new Set(infos.map((i) => i.name));
  for (const info of infos) {
    if (info.parent !== '') assert.ok(names.has(info.parent), `${info.name}: parent ${info.parent} missing`);
    if (info.kind === 3) {
      const mounts = await client.view(`check-${info.name}`, info.name);
      // The view's nearest lower layer is the committed snapshot's own directory.
      const m = mounts[0]!;
      const source = m.type === 'bind' ? m.source : m.options.find((o) => o.startsWith('lowerdir='))!.slice('lowerdir='.length).split(':')[0]!;
      assert.ok(existsSync(source), `${info.name}: directory ${source} missing`);
      assert.equal(readFileSync(join(source, 'whoami'), 'utf8'), info.name, `${info.name}: committed data lost`);
      await client.remove(`check-${info.name}`);
    } else {
      const mounts = await client.mounts(info.name);
      assert.ok(existsSync(upperDir(mounts)), `${info.name}: directory missing`);
    }
  }
  await client.cleanup();
  const dirs = readdirSync(join(d.root, 'snapshots'));
  assert.equal(dirs.length, infos.length, `after Cleanup: ${dirs.length} directories for ${infos.length} snapshots`);
  return infos.length;
}

describe('crash recovery', () => {
  it('SIGKILL during concurrent Prepare/Commit/Remove leaves consistent metadata, three times over', async () => {
    const dir = join(work, 'daemon');
    let totalOps = 0;
    for (let round = 0; round < 3; round++) {
      daemon = await startDaemon(dir);
      await checkConsistency(daemon);
      const stop = { now: false };
      const workers = Array.from({ length: 12 }, (_, i) => worker(daemon!.client, i, round, stop));
      await new Promise((r) => setTimeout(r, 700 + round * 300));
      await daemon.kill();
      stop.now = true;
      totalOps += (await Promise.all(workers)).reduce((a, b) => a + b, 0);
    }
    daemon = await startDaemon(dir);
    const snapshots = await checkConsistency(daemon);
    assert.ok(totalOps > 50, `load too small to mean anything: ${totalOps} chains`);
    assert.ok(snapshots > 0);
  });
});
