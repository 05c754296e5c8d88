// Timeouts, retries, error mapping, connection reuse and range reads against
// fake servers that misbehave on purpose.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import {
  DigestMismatchError,
  InvalidContentError,
  MediaType,
  NotFoundError,
  RegistryClient,
  RegistryError,
  RegistryTimeoutError,
  RegistryUnreachableError,
  ShortReadError,
  digestOf,
  type Logger,
} from '../../../src/registry/index.js';
import { FakeServer, oneLayerManifest, sendError } from './fake-server.js';

const fastRetry = { baseDelayMs: 5, maxDelayMs: 20, maxAttempts: 4 };
const blob = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
const blobDigest = digestOf(blob);
const manifestRaw = oneLayerManifest(blob, blobDigest);

class RecordingLogger implements Logger {
  readonly lines: Array<{ level: string; obj: object; msg: string | undefined }> = [];
  debug(obj: object, msg?: string): void {
    this.lines.push({ level: 'debug', obj, msg });
  }
  info(obj: object, msg?: string): void {
    this.lines.push({ level: 'info', obj, msg });
  }
  warn(obj: object, msg?: string): void {
    this.lines.push({ level: 'warn', obj, msg });
  }
  error(obj: object, msg?: string): void {
    this.lines.push({ level: 'error', obj, msg });
  }
}

/** Accepts connections and reads requests but never answers. */
async function startHungServer(): Promise<{ host: string; close: () => Promise<void>; connections: () => number }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('data', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    host: `127.0.0.1:${port}`,
    connections: () => connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

let servers: Array<{ close: () => Promise<void> }> = [];
let clients: RegistryClient[] = [];
afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  clients = [];
});
function track<T extends { close: () => Promise<void> }>(x: T): T {
  servers.push(x);
  return x;
}
function makeClient(opts: ConstructorParameters<typeof RegistryClient>[0] = {}): RegistryClient {
  const c = new RegistryClient({ retry: fastRetry, ...opts });
  clients.push(c);
  return c;
}

describe('timeouts', () => {
  it('a hung server fails with RegistryTimeoutError within the request deadline', async () => {
    const hung = track(await startHungServer());
    const client = makeClient({ timeouts: { requestMs: 600, headersMs: 10_000 } });
    const t0 = Date.now();
    await assert.rejects(client.getManifest(`${hung.host}/repo:tag`), (err: unknown) => {
      assert.ok(err instanceof RegistryTimeoutError, String(err));
      assert.ok(err instanceof RegistryUnreachableError);
      assert.match(err.message, /600 ms/);
      assert.match(err.message, new RegExp(`${hung.host}/repo:tag`));
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took >= 550 && took < 1500, `took ${took} ms`);
  });

  it('a headers timeout is retried, and the deadline still bounds the whole call', async () => {
    const hung = track(await startHungServer());
    const client = makeClient({ timeouts: { headersMs: 150, requestMs: 2_000 }, retry: { ...fastRetry, maxAttempts: 3 } });
    const t0 = Date.now();
    await assert.rejects(client.blobSize(`${hung.host}/repo`, blobDigest), (err: unknown) => {
      assert.ok(err instanceof RegistryTimeoutError, String(err));
      assert.match(err.message, /no response headers within 150 ms/);
      assert.equal(err.digest, blobDigest);
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took < 1500, `took ${took} ms`);
    assert.ok(hung.connections() >= 3, `expected 3 attempts, saw ${hung.connections()} connections`);
  });

  it('a stalled body fails with RegistryTimeoutError', async () => {
    const server = track(
      await FakeServer.start((_req, res) => {
        res.writeHead(200, { 'content-length': String(blob.length) });
        res.write(blob.subarray(0, 100)); // and then nothing
      }),
    );
    const client = makeClient({ timeouts: { bodyMs: 200, requestMs: 5_000 }, retry: { maxAttempts: 1 } });
    const t0 = Date.now();
    await assert.rejects(client.fetchBlob(`${server.host}/repo`, blobDigest), RegistryTimeoutError);
    assert.ok(Date.now() - t0 < 2_000);
  });

  it("the caller's AbortSignal cancels at once and is not retried", async () => {
    const hung = track(await startHungServer());
    const client = makeClient({ timeouts: { requestMs: 10_000 } });
    const ac = new AbortController();
    const reason = new Error('caller gave up');
    setTimeout(() => ac.abort(reason), 100);
    const t0 = Date.now();
    await assert.rejects(client.readRange(`${hung.host}/repo`, blobDigest, 0, 10, { signal: ac.signal }), (err: unknown) => err === reason);
    assert.ok(Date.now() - t0 < 1_000);
    assert.equal(hung.connections(), 1);
  });

  it('an already-aborted signal fails without a request', async () => {
    const server = track(await FakeServer.start((_req, res) => res.end()));
    const client = makeClient();
    await assert.rejects(client.blobSize(`${server.host}/repo`, blobDigest, { signal: AbortSignal.abort() }), { name: 'AbortError' });
    assert.equal(server.requests.length, 0);
  });
});

describe('retries', () => {
  it('retries GET on 503 and then succeeds, logging each retry', async () => {
    let n = 0;
    const server = track(
      await FakeServer.start((_req, res) => {
        if (++n <= 2) return sendError(res, 503, 'UNAVAILABLE', 'try later');
        res.writeHead(200, { 'content-type': MediaType.DockerManifest, 'content-length': String(manifestRaw.length) });
        res.end(manifestRaw);
      }),
    );
    const logger = new RecordingLogger();
    const client = makeClient({ logger });
    const m = await client.getManifest(`${server.host}/repo:tag`);
    assert.equal(m.descriptor.mediaType, MediaType.DockerManifest);
    assert.equal(server.requests.length, 3);
    const warns = logger.lines.filter((l) => l.level === 'warn');
    assert.equal(warns.length, 2);
    assert.match(warns[0]!.msg ?? '', /retrying/);
  });

  it('gives up after maxAttempts with the last status', async () => {
    const server = track(await FakeServer.start((_req, res) => sendError(res, 502, 'BAD_GATEWAY', 'upstream')));
    const client = makeClient();
    await assert.rejects(client.blobSize(`${server.host}/repo`, blobDigest), (err: unknown) => err instanceof RegistryError && err.status === 502);
    assert.equal(server.requests.length, fastRetry.maxAttempts);
  });

  it('never retries a 404 and reports it as NotFoundError with ref, digest, status and code', async () => {
    const server = track(await FakeServer.start((_req, res) => sendError(res, 404, 'BLOB_UNKNOWN', 'blob unknown to registry')));
    const client = makeClient();
    await assert.rejects(client.fetchBlob(`${server.host}/some/repo`, blobDigest), (err: unknown) => {
      assert.ok(err instanceof NotFoundError);
      assert.equal(err.status, 404);
      assert.equal(err.code, 'BLOB_UNKNOWN');
      assert.equal(err.ref, `${server.host}/some/repo:latest`);
      assert.equal(err.digest, blobDigest);
      for (const part of [`${server.host}/some/repo`, blobDigest, 'HTTP 404', 'BLOB_UNKNOWN']) assert.ok(err.message.includes(part), `${part} in ${err.message}`);
      return true;
    });
    assert.equal(server.requests.length, 1);
  });

  it('honours Retry-After on 429', async () => {
    let n = 0;
    const server = track(
      await FakeServer.start((_req, res) => {
        if (++n === 1) return sendError(res, 429, 'TOOMANYREQUESTS', 'slow down', { 'retry-after': '0' });
        res.writeHead(200, { 'content-length': String(blob.length) });
        res.end(blob);
      }),
    );
    const client = makeClient();
    assert.equal(await client.blobSize(`${server.host}/repo`, blobDigest), blob.length);
    assert.equal(server.requests.length, 2);
  });

  it('does not retry non-idempotent requests', async () => {
    const server = track(await FakeServer.start((_req, res) => sendError(res, 503, 'UNAVAILABLE', 'x')));
    const client = makeClient();
    await assert.rejects(
      client.pushManifest(`${server.host}/repo:tag`, manifestRaw),
      (err: unknown) => err instanceof RegistryError && err.status === 503,
    );
    assert.equal(server.requests.length, 1);
    assert.equal(server.requests[0]!.method, 'PUT');
  });

  it('a closed port gives RegistryUnreachableError quickly', async () => {
    const server = await FakeServer.start((_req, res) => res.end());
    const host = server.host;
    await server.close();
    const client = makeClient({ retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 200 } });
    const t0 = Date.now();
    await assert.rejects(client.resolve(`${host}/repo:tag`), (err: unknown) => {
      assert.ok(err instanceof RegistryUnreachableError, String(err));
      assert.ok(!(err instanceof RegistryTimeoutError));
      assert.equal(err.code, 'ECONNREFUSED');
      assert.match(err.message, /cannot reach/);
      assert.match(err.message, new RegExp(host));
      return true;
    });
    assert.ok(Date.now() - t0 < 2_000);
  });

  it('a connection reset mid-body is retried', async () => {
    let n = 0;
    const server = track(
      await FakeServer.start((req, res) => {
        if (++n === 1) {
          res.writeHead(200, { 'content-length': String(blob.length) });
          res.write(blob.subarray(0, 10));
          setTimeout(() => req.socket.destroy(), 20);
          return;
        }
        res.writeHead(200, { 'content-length': String(blob.length) });
        res.end(blob);
      }),
    );
    const client = makeClient();
    assert.deepEqual(await client.fetchBlob(`${server.host}/repo`, blobDigest), blob);
    assert.equal(server.requests.length, 2);
  });
});

describe('connections', () => {
  it('reuses one keep-alive connection for sequential requests', async () => {
    const server = track(
      await FakeServer.start((req, res) => {
        const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
        if (!m) {
          res.writeHead(200, { 'content-length': String(blob.length) });
          return res.end(blob);
        }
        const [start, end] = [Number(m[1]), Number(m[2])];
        res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${blob.length}`, 'content-length': String(end - start + 1) });
        res.end(blob.subarray(start, end + 1));
      }),
    );
    const client = makeClient();
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(await client.readRange(`${server.host}/repo`, blobDigest, i * 10, 10), blob.subarray(i * 10, i * 10 + 10));
    }
    for (let i = 0; i < 5; i++) await client.fetchBlob(`${server.host}/repo`, blobDigest);
    assert.equal(server.requests.length, 25);
    // undici's pool opens a second socket while the first one finishes its
    // first response, then alternates between the two; without keep-alive
    // this would be 25.
    assert.ok(server.connections <= 2, `${server.connections} connections`);
  });

  it('parallel range reads share a bounded pool of connections', async () => {
    const server = track(
      await FakeServer.start((req, res) => {
        const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')!;
        const [start, end] = [Number(m[1]), Number(m[2])];
        setTimeout(() => {
          res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${blob.length}`, 'content-length': String(end - start + 1) });
          res.end(blob.subarray(start, end + 1));
        }, 5);
      }),
    );
    const client = makeClient({ connectionsPerOrigin: 4 });
    for (let round = 0; round < 3; round++) {
      const got = await Promise.all(Array.from({ length: 16 }, (_, i) => client.readRange(`${server.host}/repo`, blobDigest, i * 100, 100)));
      got.forEach((b, i) => assert.deepEqual(b, blob.subarray(i * 100, i * 100 + 100)));
    }
    assert.equal(server.requests.length, 48);
    assert.ok(server.connections <= 4, `${server.connections} connections`);
  });

  it('uses plain HTTP only for loopback and configured insecure hosts', () => {
    const client = makeClient({ insecureHosts: ['reg.internal:5000', 'other.lan'] });
    // Reach into the transport through a resolve-free path: schemes are visible in error URLs,
    // so check the documented rule directly.
    const transport = (client as unknown as { transport: { schemeFor(h: string): string } }).transport;
    assert.equal(transport.schemeFor('localhost:5000'), 'http:');
    assert.equal(transport.schemeFor('127.0.0.1:1234'), 'http:');
    assert.equal(transport.schemeFor('[::1]:5000'), 'http:');
    assert.equal(transport.schemeFor('reg.internal:5000'), 'http:');
    assert.equal(transport.schemeFor('reg.internal:5001'), 'https:');
    assert.equal(transport.schemeFor('other.lan:443'), 'http:');
    assert.equal(transport.schemeFor('registry-1.docker.io'), 'https:');
    assert.equal(transport.schemeFor('127.0.0.2'), 'https:');
  });
});

describe('range reads', () => {
  /** A blob server that honours Range with 206 (or ignores it with 200 when `ignoreRange`). */
  async function blobServer(opts: { ignoreRange?: boolean; truncateTo?: number } = {}): Promise<FakeServer> {
    return FakeServer.start((req, res) => {
      if (req.url !== `/v2/repo/blobs/${blobDigest}`) return sendError(res, 404, 'BLOB_UNKNOWN', 'x');
      const suffix = /^bytes=-(\d+)$/.exec(req.headers.range ?? '');
      if (suffix && !opts.ignoreRange) {
        const start = Math.max(0, blob.length - Number(suffix[1]));
        res.writeHead(206, { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}`, 'content-length': String(blob.length - start) });
        return res.end(blob.subarray(start));
      }
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (!m || opts.ignoreRange) {
        res.writeHead(200, { 'content-length': String(blob.length) });
        return res.end(blob);
      }
      const start = Number(m[1]);
      if (start >= blob.length) {
        res.writeHead(416, { 'content-range': `bytes */${blob.length}` });
        return res.end();
      }
      const end = Math.min(Number(m[2]), blob.length - 1);
      let body = blob.subarray(start, end + 1);
      if (opts.truncateTo !== undefined) body = body.subarray(0, opts.truncateTo);
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${blob.length}`, 'content-length': String(body.length) });
      res.end(body);
    });
  }

  const windows: Array<[number, number]> = [
    [0, 1],
    [0, 100],
    [1234, 999],
    [4999, 1],
    [4000, 1000],
    [0, 5000],
  ];

  it('returns exactly the requested bytes from 206 responses', async () => {
    const server = track(await blobServer());
    const client = makeClient();
    for (const [off, len] of windows) {
      assert.deepEqual(await client.readRange(`${server.host}/repo`, blobDigest, off, len), blob.subarray(off, off + len), `${off}+${len}`);
    }
    assert.equal(server.requests[2]!.headers.range, 'bytes=1234-2232');
    assert.deepEqual(await client.readRange(`${server.host}/repo`, blobDigest, 10, 0), Buffer.alloc(0));
  });

  it('slices a 200 full-body answer', async () => {
    const server = track(await blobServer({ ignoreRange: true }));
    const client = makeClient();
    for (const [off, len] of windows) {
      assert.deepEqual(await client.readRange(`${server.host}/repo`, blobDigest, off, len), blob.subarray(off, off + len), `${off}+${len}`);
    }
  });

  it('fails on ranges past the end, without retrying', async () => {
    for (const ignoreRange of [false, true]) {
      const server = track(await blobServer({ ignoreRange }));
      const client = makeClient();
      for (const [off, len] of [
        [4990, 20],
        [6000, 1],
      ] as const) {
        const before = server.requests.length;
        await assert.rejects(client.readRange(`${server.host}/repo`, blobDigest, off, len), (err: unknown) => {
          assert.ok(err instanceof RegistryError, String(err));
          assert.equal(err.code, 'RANGE_NOT_SATISFIABLE');
          assert.match(err.message, /beyond its end/);
          assert.ok(err.message.includes(blobDigest));
          return true;
        });
        assert.equal(server.requests.length - before, 1);
      }
    }
  });

  it('a short 206 body is a ShortReadError (after retries)', async () => {
    // The server announces 206 of the right range but sends fewer bytes with a matching Content-Length.
    const server = track(await blobServer({ truncateTo: 3 }));
    const client = makeClient();
    await assert.rejects(client.readRange(`${server.host}/repo`, blobDigest, 100, 10), (err: unknown) => {
      assert.ok(err instanceof ShortReadError, String(err));
      assert.match(err.message, /3 of 10/);
      return true;
    });
    assert.equal(server.requests.length, fastRetry.maxAttempts);
  });

  it('readTail returns the last bytes and the blob size in one request, from 206 and from an ignored range', async () => {
    for (const ignoreRange of [false, true]) {
      const server = track(await blobServer({ ignoreRange }));
      const client = makeClient();
      for (const length of [1, 100, blob.length, blob.length + 1000]) {
        const before = server.requests.length;
        const tail = await client.readTail(`${server.host}/repo`, blobDigest, length);
        assert.equal(tail.size, blob.length, `size, ignoreRange=${ignoreRange} length=${length}`);
        assert.deepEqual(tail.data, blob.subarray(Math.max(0, blob.length - length)), `bytes, ignoreRange=${ignoreRange} length=${length}`);
        assert.equal(server.requests.length - before, 1, 'one request');
        assert.equal(server.requests.at(-1)!.headers.range, `bytes=-${length}`);
      }
    }
  });

  it('readTail refuses a 206 that is not the suffix asked for', async () => {
    const server = track(
      await FakeServer.start((_req, res) => {
        res.writeHead(206, { 'content-range': `bytes 0-9/${blob.length}`, 'content-length': '10' });
        res.end(blob.subarray(0, 10));
      }),
    );
    await assert.rejects(makeClient().readTail(`${server.host}/repo`, blobDigest, 10), (err: unknown) => {
      assert.ok(err instanceof InvalidContentError, String(err));
      assert.match(err.message, /does not answer a 10-byte suffix/);
      return true;
    });
  });

  it('rejects invalid arguments', async () => {
    const client = makeClient();
    await assert.rejects(client.readTail('127.0.0.1:1/repo', blobDigest, 0), RangeError);
    await assert.rejects(client.readRange('127.0.0.1:1/repo', blobDigest, -1, 1), RangeError);
    await assert.rejects(client.readRange('127.0.0.1:1/repo', blobDigest, 0, 1.5), RangeError);
    await assert.rejects(client.readRange('127.0.0.1:1/repo', 'sha256:nope', 0, 1), /invalid or unsupported digest/);
  });

  it('blobSize falls back to a ranged GET when HEAD has no length', async () => {
    const server = track(
      await FakeServer.start((req, res) => {
        if (req.method === 'HEAD') {
          res.writeHead(200, { 'transfer-encoding': 'chunked' });
          return res.end();
        }
        res.writeHead(206, { 'content-range': `bytes 0-0/${blob.length}`, 'content-length': '1' });
        res.end(blob.subarray(0, 1));
      }),
    );
    const client = makeClient();
    assert.equal(await client.blobSize(`${server.host}/repo`, blobDigest), blob.length);
    assert.deepEqual(server.requests.map((r) => r.method), ['HEAD', 'GET']);
  });
});

describe('content verification', () => {
  it('a manifest whose bytes do not match Docker-Content-Digest is refused', async () => {
    const server = track(
      await FakeServer.start((_req, res) => {
        res.writeHead(200, { 'content-type': MediaType.DockerManifest, 'docker-content-digest': `sha256:${'0'.repeat(64)}` });
        res.end(manifestRaw);
      }),
    );
    const client = makeClient();
    await assert.rejects(client.getManifest(`${server.host}/repo:tag`), DigestMismatchError);
  });

  it('a manifest fetched by digest must hash to that digest', async () => {
    const other = Buffer.from(manifestRaw.toString().replace('"size":3', '"size":4'));
    const server = track(
      await FakeServer.start((_req, res) => {
        res.writeHead(200, { 'content-type': MediaType.DockerManifest });
        res.end(other);
      }),
    );
    const client = makeClient();
    const d = digestOf(manifestRaw);
    await assert.rejects(client.getManifest(`${server.host}/repo@${d}`), (err: unknown) => err instanceof DigestMismatchError && err.expected === d);
    await assert.rejects(client.resolve(`${server.host}/repo@${d}`), DigestMismatchError);
  });

  it('a blob with wrong content is refused, whole or streamed', async () => {
    const server = track(
      await FakeServer.start((_req, res) => {
        const bad = Buffer.from(blob);
        bad[42] ^= 1;
        res.writeHead(200, { 'content-length': String(bad.length) });
        res.end(bad);
      }),
    );
    const client = makeClient();
    await assert.rejects(client.fetchBlob(`${server.host}/repo`, blobDigest), DigestMismatchError);
    const { stream, size } = await client.openBlob(`${server.host}/repo`, blobDigest);
    assert.equal(size, blob.length);
    await assert.rejects(
      (async () => {
        for await (const _ of stream) {
          // drain
        }
      })(),
      DigestMismatchError,
    );
  });

  it('an oversized manifest is refused', async () => {
    const server = track(
      await FakeServer.start((_req, res) => {
        res.writeHead(200, { 'content-type': MediaType.DockerManifest });
        res.end(Buffer.alloc(5 * 1024 * 1024, 0x20));
      }),
    );
    const client = makeClient({ retry: { maxAttempts: 1 } });
    await assert.rejects(client.getManifest(`${server.host}/repo:tag`), /larger than/);
  });
});
