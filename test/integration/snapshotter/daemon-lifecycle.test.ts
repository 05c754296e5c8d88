// The daemon's life as an operator sees it: socket permissions, a stale
// socket, a second daemon on a busy socket, and graceful SIGTERM.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_PATH, startDaemon } from '../../harness/daemon.js';
import { makeTempDir, removeTree } from '../../harness/process.js';

let work: string;

before(() => {
  work = makeTempDir('lifecycle');
});

after(() => {
  removeTree(work);
});

describe('lazysnap serve lifecycle', () => {
  it('creates the socket 0660 in a 0711 directory, and refuses a second daemon on it', async () => {
    const daemon = await startDaemon(join(work, 'a'));
    try {
      assert.equal(statSync(daemon.socket).mode & 0o777, 0o660);
      const second = spawnSync(process.execPath, [CLI_PATH, 'serve', '--address', daemon.socket, '--root', join(work, 'a', 'root2'), '--config', '/dev/null'], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(second.status, 1);
      assert.match(second.stderr, /another process is already serving/);
      // The running daemon is unharmed.
      await daemon.client.prepare('still-works', '');
    } finally {
      await daemon.stop();
    }
  });

  it('removes a stale socket file left by a dead process', async () => {
    const dir = join(work, 'stale');
    mkdirSync(dir, { recursive: true });
    const socket = join(dir, 'lazysnap.sock');
    // A socket file nobody listens on: its owner was killed and never unlinked it.
    const owner = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    assert.equal(owner.signal, 'SIGKILL');
    assert.ok(statSync(socket).isSocket(), 'test setup: stale socket file should exist');
    const daemon = await startDaemon(dir);
    try {
      await daemon.client.prepare('after-stale', '');
    } finally {
      await daemon.stop();
    }
  });

  it('SIGTERM lets in-flight calls finish, then exits 0 with the metadata intact', async () => {
    const dir = join(work, 'term');
    let daemon = await startDaemon(dir);
    await daemon.client.prepare('t-a', '');
    let acknowledged = 0;
    const client = daemon.client;
    const calls = Array.from({ length: 300 }, (_, i) =>
      client.prepare(`t-${i}`, '').then(() => {
        acknowledged++;
      }),
    );
    while (acknowledged < 30) await new Promise((r) => setTimeout(r, 2));
    daemon.process.child.kill('SIGTERM');
    const results = await Promise.allSettled(calls);
    const code = await daemon.process.waitExit();
    assert.equal(code, 0);
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    for (const r of results) {
      // A call the daemon did not take is refused as unavailable or cancelled, never failed halfway.
      if (r.status === 'rejected') assert.ok([1, 14].includes((r.reason as { code: number }).code), String(r.reason));
    }
    daemon.client.close();
    daemon = await startDaemon(dir);
    try {
      const names = new Set((await daemon.client.list()).map((i) => i.name));
      assert.ok(names.has('t-a'));
      // Every call that was answered OK is durable.
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') assert.ok(names.has(`t-${i}`), `t-${i} acknowledged but lost`);
      });
      assert.ok(ok > 0, 'no in-flight call completed during graceful shutdown');
    } finally {
      await daemon.stop();
    }
  });

  it('creates a missing socket directory with mode 0711', () => {
    const runDir = join(work, 'run-dir', 'lazysnap');
    const child = spawnSync('timeout', ['--preserve-status', '-s', 'TERM', '3', process.execPath, CLI_PATH, 'serve', '--address', join(runDir, 'x.sock'), '--root', join(work, 'run-dir', 'root'), '--config', '/dev/null'], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(statSync(runDir).mode & 0o777, 0o711);
  });
});
