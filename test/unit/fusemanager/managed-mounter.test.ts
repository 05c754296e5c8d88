// The daemon's side of the FUSE manager against the real control server, with
// an in-memory mounter behind it (the mounts themselves are the e2e test's):
// calls and their errors cross the socket intact, a manager that is started
// on demand is found, a new manager instance is given every layer the daemon
// holds, status never waits for a manager that is away, the daemon waits for
// a warming manager for a bounded time only, and a manager of another
// protocol is refused with a reason.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { FuseManagerCallError, FuseManagerServer, FuseManagerUnavailableError, ManagedMounter, type ManagerBackend, type StartedManager } from '../../../src/fusemanager/index.js';
import type { RemoteLayerRef } from '../../../src/snapshotter/metadata-store.js';
import type { ImageToOpen, NotRemote, RemoteMounter } from '../../../src/snapshotter/remote/remote-mounter.js';
import type { RemoteRequest } from '../../../src/snapshotter/remote/remote-request.js';
import { makeTempDir, removeTree, waitUntil } from '../../harness/process.js';

const logger = pino({ level: 'silent' });

/** Holders per layer digest, as a manager's mounter keeps them. */
class MemoryMounter implements RemoteMounter {
  readonly holders = new Map<string, Set<string>>();
  readonly imagesOpened: ImageToOpen[] = [];

  openImage(image: ImageToOpen): void {
    this.imagesOpened.push(image);
  }

  async decide(request: RemoteRequest): Promise<RemoteLayerRef | NotRemote> {
    if (request.layerDigest === 'sha256:broken') {
      const err = new Error('TOC digest mismatch for sha256:broken');
      err.name = 'TocDigestMismatchError';
      throw err;
    }
    if (request.layerDigest === 'sha256:plain') return { notRemote: 'no TOC digest' };
    return { ref: request.ref, digest: request.layerDigest, tocDigest: 'sha256:toc' };
  }

  async acquire(layer: RemoteLayerRef, holder: string): Promise<string> {
    const set = this.holders.get(layer.digest) ?? new Set<string>();
    set.add(holder);
    this.holders.set(layer.digest, set);
    return `/layers/${layer.digest}`;
  }

  async release(layer: RemoteLayerRef, holder: string): Promise<void> {
    this.holders.get(layer.digest)?.delete(holder);
  }

  async retainOnly(keep: ReadonlySet<string>): Promise<void> {
    for (const set of this.holders.values()) for (const holder of [...set]) if (!keep.has(holder)) set.delete(holder);
  }

  async cleanupStale(): Promise<string[]> {
    return [];
  }

  async close(): Promise<void> {}
}

function backend(mounter: MemoryMounter, warmedUp: () => Promise<void> = async () => undefined): ManagerBackend {
  return {
    mounter,
    warmedUp,
    state: async () => ({ layers: [], chunkCache: { memoryHits: 1, diskHits: 2, misses: 3, memoryBytes: 0, memoryEntries: 0, disk: undefined }, registryErrors: { windowSeconds: 600, inWindow: 0, total: 0, recent: [] } }),
    metrics: async () => 'lazysnap_test_metric 1\n',
    mounts: () => mounter.holders.size,
  };
}

const layer = (digest: string): RemoteLayerRef => ({ ref: 'registry.test/app:1', digest, tocDigest: 'sha256:toc' });

let dir: string;

before(() => {
  dir = makeTempDir('fuse-manager-client');
});

after(() => removeTree(dir));

describe('ManagedMounter', () => {
  it('starts a manager when none answers, and passes calls, results and errors through', async () => {
    const socketPath = join(dir, 'a.sock');
    const mounter = new MemoryMounter();
    let server: FuseManagerServer | undefined;
    let starts = 0;
    const client = await ManagedMounter.connect({
      socketPath,
      logger,
      start: async (): Promise<StartedManager> => {
        starts++;
        server = await FuseManagerServer.listen(socketPath, backend(mounter), logger, '9.9.9');
        return { exited: new Promise(() => undefined), logPath: '/dev/null' };
      },
    });
    try {
      assert.equal(starts, 1);
      assert.equal(statSync(socketPath).mode & 0o777, 0o600, 'the control socket is root\'s alone');
      assert.deepEqual(await client.decide({ protocol: 'target-ref', ref: 'registry.test/app:1', layerDigest: 'sha256:a' }), layer('sha256:a'));
      assert.deepEqual(await client.decide({ protocol: 'target-ref', ref: 'registry.test/app:1', layerDigest: 'sha256:plain' }), { notRemote: 'no TOC digest' });
      await assert.rejects(client.decide({ protocol: 'target-ref', ref: 'registry.test/app:1', layerDigest: 'sha256:broken' }), (err: unknown) =>
        err instanceof FuseManagerCallError && err.remoteName === 'TocDigestMismatchError' && err.message === 'TOC digest mismatch for sha256:broken');
      assert.equal(await client.acquire(layer('sha256:a'), '7'), '/layers/sha256:a');
      assert.equal(await client.acquire(layer('sha256:a'), '7'), '/layers/sha256:a');
      await client.acquire(layer('sha256:a'), '8');
      assert.deepEqual([...(mounter.holders.get('sha256:a') ?? [])], ['7', '8']);
      await client.retainOnly(new Set(['8']));
      assert.deepEqual([...(mounter.holders.get('sha256:a') ?? [])], ['8']);
      // Fire and forget: the manager starts opening the image's layers; the call that follows shows it has arrived.
      client.openImage({ ref: 'registry.test/app:1', manifestDigest: 'sha256:m' });
      const status = await client.status();
      assert.deepEqual(mounter.imagesOpened, [{ ref: 'registry.test/app:1', manifestDigest: 'sha256:m' }]);
      assert.equal(status.connected, true);
      assert.equal(status.version, '9.9.9');
      assert.equal(status.pid, process.pid);
      assert.equal(await client.metricsText(), 'lazysnap_test_metric 1\n');
      assert.equal((await client.state()).chunkCache.misses, 3);
    } finally {
      await client.close();
      await server?.close();
    }
  });

  it('gives a new manager every layer the daemon holds, counts the restart, and never waits in status while the manager is away', async () => {
    const socketPath = join(dir, 'b.sock');
    let mounter = new MemoryMounter();
    let server = await FuseManagerServer.listen(socketPath, backend(mounter), logger, '1');
    let startNewOne: (() => void) | undefined;
    const client = await ManagedMounter.connect({
      socketPath,
      logger,
      restartGraceMs: 200,
      // The replacement comes up only when the test says so: meanwhile the manager is away.
      start: async () => {
        await new Promise<void>((resolve) => (startNewOne = resolve));
        mounter = new MemoryMounter();
        server = await FuseManagerServer.listen(socketPath, backend(mounter), logger, '2');
        return { exited: new Promise(() => undefined), logPath: '/dev/null' };
      },
    });
    try {
      await client.acquire(layer('sha256:a'), '1');
      await client.acquire(layer('sha256:b'), '2');
      await client.acquire(layer('sha256:b'), '3');
      await client.release(layer('sha256:b'), '3');
      await server.close();
      await waitUntil('the client notices', () => !client.isConnected, 5_000, 10);
      const started = performance.now();
      const away = await client.status();
      assert.equal(away.connected, false);
      await assert.rejects(client.state(), FuseManagerUnavailableError);
      assert.ok(performance.now() - started < 1_000, 'status answered at once');
      await waitUntil('a start was asked for', () => startNewOne !== undefined, 5_000, 10);
      startNewOne?.();
      await waitUntil('reconnected to the new manager', () => client.isConnected, 10_000, 10);
      await waitUntil('every held layer given to the new manager', () => mounter.holders.size === 2, 5_000, 10);
      assert.deepEqual([...(mounter.holders.get('sha256:a') ?? [])], ['1']);
      assert.deepEqual([...(mounter.holders.get('sha256:b') ?? [])], ['2'], 'a released reference is not given again');
      assert.equal(client.restarts, 1);
      assert.equal((await client.status()).version, '2');
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('after a loss, leaves the first move to a service manager that restarts the manager itself', async () => {
    const socketPath = join(dir, 'e.sock');
    let mounter = new MemoryMounter();
    let server = await FuseManagerServer.listen(socketPath, backend(mounter), logger, '1');
    let starts = 0;
    const client = await ManagedMounter.connect({
      socketPath,
      logger,
      restartGraceMs: 2_000,
      start: async () => {
        starts++;
        return { exited: new Promise(() => undefined), logPath: '/dev/null' };
      },
    });
    try {
      await client.acquire(layer('sha256:a'), '1');
      await server.close();
      await new Promise((resolve) => setTimeout(resolve, 300));
      // systemd's Restart= brings the unit back within the grace period.
      mounter = new MemoryMounter();
      server = await FuseManagerServer.listen(socketPath, backend(mounter), logger, '1');
      await waitUntil('reconnected', () => client.isConnected && mounter.holders.size === 1, 10_000, 10);
      assert.equal(starts, 0, 'no second manager was started to fight the first over the lock');
      assert.equal(client.restarts, 1);
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('refuses a manager that speaks another control protocol, saying which', async () => {
    const socketPath = join(dir, 'c.sock');
    const old = createServer((socket) => {
      socket.setEncoding('utf8');
      socket.on('data', (line: string) => {
        const { id } = JSON.parse(line.trim()) as { id: number };
        socket.write(`${JSON.stringify({ id, result: { protocol: 99, instance: 'x', pid: 4242, version: '0.0.1', startedAt: '' } })}\n`);
      });
    });
    await new Promise<void>((resolve) => old.listen(socketPath, resolve));
    try {
      await assert.rejects(
        ManagedMounter.connect({ socketPath, logger, start: async () => assert.fail('a manager answers; none may be started') }),
        /pid 4242, version 0\.0\.1\) speaks control protocol 99, this daemon 1/,
      );
    } finally {
      await new Promise<void>((resolve) => old.close(() => resolve()));
    }
  });

  it('waits for the manager\'s warm-up to end, but no longer than it is told', async () => {
    const socketPath = join(dir, 'w.sock');
    let endWarmUp!: () => void;
    let warmUp = new Promise<void>((resolve) => {
      endWarmUp = resolve;
    });
    const server = await FuseManagerServer.listen(socketPath, backend(new MemoryMounter(), () => warmUp), logger, '9.9.9');
    const client = await ManagedMounter.connect({ socketPath, logger, start: async () => assert.fail('a manager answers; none may be started') });
    try {
      let waited = false;
      const waiting = client.warmedUp(10_000).then(() => {
        waited = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(waited, false, 'the daemon waits while the manager warms up');
      endWarmUp();
      await waiting;
      // A warm-up that never ends holds the daemon for the bound only, and is no error.
      warmUp = new Promise<void>(() => undefined);
      const started = performance.now();
      await client.warmedUp(200);
      const ms = performance.now() - started;
      assert.ok(ms >= 150 && ms < 3_000, `waited ${ms} ms for a warm-up bounded at 200 ms`);
      assert.equal(client.isConnected, true, 'a warm-up past its bound leaves the connection up');
    } finally {
      await client.close();
      await server.close();
    }
  });

  it('gives up with the reason when no manager comes up', async () => {
    const socketPath = join(dir, 'd.sock');
    await assert.rejects(
      ManagedMounter.connect({ socketPath, logger, connectTimeoutMs: 300, start: async () => ({ exited: Promise.resolve(1), logPath: '/var/log/x.log' }) }),
      (err: unknown) => err instanceof FuseManagerUnavailableError && /no answer within 300 ms/.test(err.message) && /exited with code 1/.test(err.message) && /x\.log/.test(err.message),
    );
  });
});
