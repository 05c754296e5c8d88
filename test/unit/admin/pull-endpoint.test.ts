// A pull handed from `lazysnap pull` to the daemon: POST /pull on the admin
// socket and the events streamed back, with a stand-in pull behind the
// route (the real one runs in test/e2e/daemon-pull.test.ts). What the CLI
// relies on: events in order, the daemon's failure told in its own words,
// and a daemon that cannot take the pull told apart from one whose pull
// failed (the first makes the CLI pull by itself, the second must not).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { AdminServer } from '../../../src/admin/admin-server.js';
import { DaemonCannotPullError, DaemonPullError, requestPull } from '../../../src/admin/pull-client.js';
import { formatPullSummary, type PullEvent, type PullRequestBody, type PullSummary } from '../../../src/admin/pull-model.js';
import { makeTempDir, removeTree } from '../../harness/process.js';

let dir: string;
const summary: PullSummary = { name: 'registry.test/app:1', digest: 'sha256:aa', layers: 3, remote: 2, downloaded: 1, bytesDownloaded: 1048576, seconds: 0.42 };
const request: PullRequestBody = {
  ref: 'registry.test/app:1',
  containerd: { address: '/run/containerd/containerd.sock', namespace: 'default' },
  snapshotter: 'lazysnap',
  plainHttp: false,
  dockerConfig: '/root/.docker/config.json',
  proxy: { httpsProxy: 'http://proxy.test:3128' },
  logLevel: 'warn',
};

before(() => {
  dir = makeTempDir('pull-endpoint');
});
after(() => removeTree(dir));

async function withServer(
  pull: ((r: PullRequestBody, send: (e: PullEvent) => void) => Promise<void>) | undefined,
  test: (socket: string) => Promise<void>,
  refusePull?: (r: PullRequestBody) => Promise<string | undefined>,
): Promise<void> {
  const socket = join(dir, `d${Math.random().toString(16).slice(2)}.sock.admin`);
  const server = await AdminServer.listen(socket, { status: async () => ({}), ...(pull ? { pull } : {}), ...(refusePull ? { refusePull } : {}) });
  try {
    await test(socket);
  } finally {
    await server.close();
  }
}

describe('POST /pull on the admin socket', () => {
  it('hands the request over as sent and streams the events, then the summary', async () => {
    let received: PullRequestBody | undefined;
    await withServer(async (r, send) => {
      received = r;
      send({ layer: { digest: 'sha256:l1', state: 'remote', done: 0, total: 0 } });
      send({ log: '{"level":40,"msg":"a warning"}' });
      send({ layer: { digest: 'sha256:l2', state: 'downloading', done: 5, total: 10 } });
      send({ done: summary });
    }, async (socket) => {
      const events: PullEvent[] = [];
      assert.deepEqual(await requestPull(socket, request, (e) => events.push(e)), summary);
      assert.deepEqual(received, request);
      assert.deepEqual(events, [
        { layer: { digest: 'sha256:l1', state: 'remote', done: 0, total: 0 } },
        { log: '{"level":40,"msg":"a warning"}' },
        { layer: { digest: 'sha256:l2', state: 'downloading', done: 5, total: 10 } },
      ]);
    });
    assert.equal(formatPullSummary(summary), 'registry.test/app:1: sha256:aa (3 layers: 2 remote, 1 downloaded, 0 already present; 1.0 MiB in 0.4 s)');
  });

  it("reports a pull that failed in the daemon with the daemon's error, name and message", async () => {
    await withServer(async (_r, send) => {
      send({ layer: { digest: 'sha256:l1', state: 'remote', done: 0, total: 0 } });
      throw Object.assign(new Error('TLS with registry.test failed: certificate signed by unknown authority'), { name: 'RegistryTlsError' });
    }, async (socket) => {
      await assert.rejects(requestPull(socket, request, () => {}), (err: unknown) =>
        err instanceof DaemonPullError && err.name === 'RegistryTlsError' && err.message === 'TLS with registry.test failed: certificate signed by unknown authority');
    });
  });

  it('refuses a malformed request with the reason, before any pull starts', async () => {
    let pulls = 0;
    await withServer(async () => {
      pulls++;
    }, async (socket) => {
      await assert.rejects(requestPull(socket, { ...request, config: 'relative/config.toml' }, () => {}), (err: unknown) =>
        err instanceof DaemonPullError && /refused the pull \(400\): bad pull request: config must be an absolute path/.test(err.message));
      await assert.rejects(requestPull(socket, { ...request, ref: '' }, () => {}), /ref must be a non-empty string/);
    });
    assert.equal(pulls, 0);
  });

  it('tells a daemon that cannot pull (older version, none running) apart from a failed pull', async () => {
    await withServer(undefined, async (socket) => {
      await assert.rejects(requestPull(socket, request, () => {}), (err: unknown) => err instanceof DaemonCannotPullError && /answered 405/.test(err.message));
    });
    await assert.rejects(requestPull(join(dir, 'nobody.sock.admin'), request, () => {}), (err: unknown) => err instanceof DaemonCannotPullError && /no daemon answers there/.test(err.message));
  });

  it('a pull that found the daemon by its advertised socket runs only once the daemon says it is the snapshotter named', async () => {
    const ran: string[] = [];
    const checked: PullRequestBody[] = [];
    const pull = async (r: PullRequestBody, send: (e: PullEvent) => void): Promise<void> => {
      ran.push(r.snapshotter);
      send({ done: summary });
    };
    const refusePull = async (r: PullRequestBody): Promise<string | undefined> => {
      checked.push(r);
      return r.snapshotter === 'lazysnap' ? undefined : `containerd at ${r.containerd.address} has no proxy snapshotter named ${r.snapshotter}`;
    };
    await withServer(pull, async (socket) => {
      assert.deepEqual(await requestPull(socket, { ...request, verifySnapshotter: true }, () => {}), summary);
      // Refused: the CLI may ask another daemon, so it must not read as a failed pull.
      await assert.rejects(requestPull(socket, { ...request, snapshotter: 'other', verifySnapshotter: true }, () => {}), (err: unknown) =>
        err instanceof DaemonCannotPullError && /has no proxy snapshotter named other/.test(err.message));
      // Found through containerd: nothing to check.
      assert.deepEqual(await requestPull(socket, { ...request, snapshotter: 'found-through-containerd' }, () => {}), summary);
    }, refusePull);
    assert.deepEqual(ran, ['lazysnap', 'found-through-containerd']);
    assert.deepEqual(checked.map((r) => r.snapshotter), ['lazysnap', 'other']);
  });

  it('a daemon that cannot check which snapshotter it is refuses such a pull', async () => {
    let pulls = 0;
    await withServer(async () => {
      pulls++;
    }, async (socket) => {
      await assert.rejects(requestPull(socket, { ...request, verifySnapshotter: true }, () => {}), (err: unknown) => err instanceof DaemonCannotPullError && /cannot check/.test(err.message));
    });
    await withServer(async () => {
      pulls++;
    }, async (socket) => {
      await assert.rejects(requestPull(socket, { ...request, verifySnapshotter: true }, () => {}), (err: unknown) => err instanceof DaemonCannotPullError && /containerd is down/.test(err.message));
    }, async () => {
      throw new Error('containerd is down');
    });
    assert.equal(pulls, 0);
  });

  it('says so when the daemon goes away in the middle of a pull', async () => {
    const socket = join(dir, 'dying.sock.admin');
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(`${JSON.stringify({ layer: { digest: 'sha256:l1', state: 'remote', done: 0, total: 0 } })}\n`);
      setTimeout(() => res.destroy(), 20);
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    try {
      await assert.rejects(requestPull(socket, request, () => {}), (err: unknown) =>
        err instanceof DaemonPullError && !(err instanceof DaemonCannotPullError) && /(ended the answer before the pull finished|broke during the pull)/.test(err.message));
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
