// The daemon's life as an operator sees it: socket permissions, a stale
// socket, a second daemon on a busy socket or root, addresses and configs
// that must be refused before anything is created, and graceful SIGTERM.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { CLI_PATH, runServeToExit, startDaemon } from '../../harness/daemon.js';
import { makeTempDir, removeTree, waitUntil } from '../../harness/process.js';

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
      const second = spawnSync(process.execPath, [CLI_PATH, 'serve', '--address', daemon.socket, '--root', join(work, 'a', 'root2'), '--config', '/dev/null', '--no-fuse-manager'], { encoding: 'utf8', timeout: 20_000 });
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
    const child = spawnSync('timeout', ['--preserve-status', '-s', 'TERM', '3', process.execPath, CLI_PATH, 'serve', '--address', join(runDir, 'x.sock'), '--root', join(work, 'run-dir', 'root'), '--config', '/dev/null', '--no-fuse-manager'], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(statSync(runDir).mode & 0o777, 0o711);
  });

  it('refuses a second daemon on the same root, naming the holder, and the first keeps serving', async () => {
    const dir = join(work, 'root-lock');
    let daemon = await startDaemon(dir);
    try {
      await daemon.client.prepare('before-second', '');
      const otherSocket = join(dir, 'other.sock');
      const second = runServeToExit(['--root', daemon.root, '--address', otherSocket, '--config', '/dev/null'], { timeoutMs: 10_000 });
      assert.equal(second.status, 1, `second daemon on the same root: ${second.signal ?? ''} ${second.stderr}`);
      assert.ok(second.stderr.includes(`root ${daemon.root} is in use by another lazysnap daemon (pid ${daemon.process.child.pid})`), second.stderr);
      assert.equal(existsSync(otherSocket), false, 'the refused daemon left its socket behind');
      // The first daemon's socket answers and its snapshot's directory is still there to mount.
      const [mount] = await daemon.client.mounts('before-second');
      assert.ok(mount && existsSync(mount.source), `mount source of before-second is gone: ${JSON.stringify(mount)}`);
      await daemon.client.prepare('after-second', '');
      // The kernel drops the lock with the holder, even on SIGKILL: the root is usable again.
      await daemon.kill();
      daemon = await startDaemon(dir);
      assert.ok(await daemon.client.exists('after-second'));
    } finally {
      await daemon.stop();
    }
  });

  it('refuses an --address that is a regular file, and leaves the file alone', () => {
    const dir = join(work, 'file-address');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'important.conf');
    writeFileSync(file, 'keep me\n');
    const result = runServeToExit(['--address', file, '--root', join(dir, 'root'), '--config', '/dev/null'], { timeoutMs: 10_000 });
    assert.equal(result.status, 1, `${result.signal ?? ''} ${result.stderr}`);
    assert.ok(result.stderr.includes(`socket address ${file} exists and is a regular file, not a socket`), result.stderr);
    assert.equal(readFileSync(file, 'utf8'), 'keep me\n');
    assert.equal(existsSync(join(dir, 'root')), false, 'the root was created for a daemon that could not start');
  });

  it('refuses an --address longer than a unix socket path allows, leaving nothing behind', () => {
    const dir = join(work, 'long-address');
    const address = join(dir, `${'s'.repeat(140 - dir.length)}.sock`);
    const result = runServeToExit(['--address', address, '--root', join(work, 'long-address-root'), '--config', '/dev/null'], { timeoutMs: 10_000 });
    assert.equal(result.status, 1, `${result.signal ?? ''} ${result.stderr}`);
    assert.ok(result.stderr.includes(`socket address ${address} is ${Buffer.byteLength(address)} bytes long; a unix socket path can be at most 107 bytes`), result.stderr);
    // Before: a socket with a truncated name was left in dir.
    assert.deepEqual(existsSync(dir) ? readdirSync(dir) : [], []);
    assert.equal(existsSync(join(work, 'long-address-root')), false);
  });

  it('refuses a bad config or metrics address before binding or creating anything', () => {
    const dir = join(work, 'bad-config');
    mkdirSync(dir, { recursive: true });
    const socket = join(dir, 's.sock');
    const root = join(dir, 'root');
    const config = join(dir, 'config.toml');
    writeFileSync(config, '[remote]\nfetch_timeout_seconds = 3000000\n');
    const cases = [
      { args: ['--config', config], message: `config ${config}: [remote] fetch_timeout_seconds must be an integer from 1 to 3600, got 3000000` },
      { args: ['--config', '/dev/null', '--metrics-address', 'notaport'], message: '--metrics-address must be HOST:PORT' },
    ];
    for (const { args, message } of cases) {
      const result = runServeToExit(['--address', socket, '--root', root, ...args], { timeoutMs: 10_000 });
      assert.equal(result.status, 1, `${args.join(' ')}: ${result.signal ?? ''} ${result.stderr}`);
      assert.ok(result.stderr.includes(message), result.stderr);
      assert.deepEqual(readdirSync(dir), ['config.toml'], `${args.join(' ')} left files behind`);
    }
  });

  it('exits 1 and removes its socket when the metrics port cannot be bound', async () => {
    const dir = join(work, 'metrics-busy');
    mkdirSync(dir, { recursive: true });
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (holder.address() as { port: number }).port;
      const socket = join(dir, 's.sock');
      const result = runServeToExit(['--address', socket, '--root', join(dir, 'root'), '--config', '/dev/null', '--metrics-address', `127.0.0.1:${port}`], { timeoutMs: 10_000 });
      assert.equal(result.status, 1, `${result.signal ?? ''} ${result.stderr}`);
      assert.ok(result.stderr.includes(`cannot serve metrics on 127.0.0.1:${port}`), result.stderr);
      assert.equal(existsSync(socket), false, 'the socket of a daemon that failed to start was left behind');
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  });

  it('says in words that it must run as root', () => {
    const dir = join(work, 'non-root');
    const result = runServeToExit(['--address', join(dir, 's.sock'), '--root', join(dir, 'root'), '--config', '/dev/null'], { timeoutMs: 10_000, asUser: 65534 });
    assert.equal(result.status, 1, `${result.signal ?? ''} ${result.stderr}`);
    assert.match(result.stderr, /lazysnap serve must run as root \(it mounts overlay and FUSE filesystems/);
  });

  it('makes ROOT/cache, chunks and tocs private (0700) even when they already exist', async () => {
    const dir = join(work, 'private-cache');
    const cacheDirs = ['cache', 'cache/chunks', 'cache/tocs'].map((d) => join(dir, 'root', d));
    for (const d of cacheDirs) mkdirSync(d, { recursive: true, mode: 0o755 });
    const daemon = await startDaemon(dir);
    try {
      for (const d of cacheDirs) assert.equal(statSync(d).mode & 0o777, 0o700, d);
    } finally {
      await daemon.stop();
    }
    const fresh = await startDaemon(join(work, 'private-fresh'));
    try {
      assert.equal(statSync(fresh.root).mode & 0o777, 0o700, 'a new ROOT');
    } finally {
      await fresh.stop();
    }
  });

  it('logs its version, the config file it read and the effective settings at start-up', async () => {
    const dir = join(work, 'startup-line');
    mkdirSync(dir, { recursive: true });
    const config = join(dir, 'config.toml');
    writeFileSync(config, '[remote]\nfetch_timeout_seconds = 7\n');
    const daemon = await startDaemon(dir, ['--config', config]);
    try {
      const version = (JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
      let line: { version?: string; config?: string; settings?: { root: string; remote: { fetchTimeoutSeconds: number; tocMemoryMiB: number } } } | undefined;
      await waitUntil('the start-up log line', () => {
        line = readFileSync(daemon.process.logPath, 'utf8').split('\n').filter((l) => l.includes('"lazysnap snapshotter serving"')).map((l) => JSON.parse(l))[0];
        return line !== undefined;
      });
      assert.equal(line?.version, version);
      assert.equal(line?.config, config);
      assert.equal(line?.settings?.root, daemon.root);
      assert.equal(line?.settings?.remote.fetchTimeoutSeconds, 7);
      assert.equal(line?.settings?.remote.tocMemoryMiB, 512);
    } finally {
      await daemon.stop();
    }
  });

  it('exits 0 on SIGTERM within the grace period when nobody reads its stderr any more', async () => {
    const dir = join(work, 'closed-stderr');
    mkdirSync(dir, { recursive: true });
    const child = spawn(process.execPath, [CLI_PATH, 'serve', '--address', join(dir, 's.sock'), '--root', join(dir, 'root'), '--config', '/dev/null', '--no-fuse-manager', '--log-level', 'debug'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    try {
      let output = '';
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      await waitUntil('the daemon serving', () => {
        if (child.exitCode !== null) throw new Error(`daemon exited early: ${output}`);
        return output.includes('lazysnap snapshotter serving');
      });
      // The reader goes away (a log shipper that died); every later write(2) fails with EPIPE.
      child.stderr.destroy();
      child.kill('SIGTERM');
      // The bound is the daemon's 10 s grace for in-flight calls; an idle daemon needs milliseconds.
      const graceMs = 10_000;
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(() => resolve('still running after the grace period'), graceMs)))]);
      clearTimeout(timer);
      assert.deepEqual(outcome, { code: 0, signal: null });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }
  });
});
