// Auth against fake servers: a token server and a registry that demands
// what real ones demand, checked by what the client actually sent.
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import {
  Authenticator,
  MediaType,
  RegistryClient,
  ScopeSet,
  StaticCredentials,
  UnauthorizedError,
  digestOf,
  type AuthHttp,
} from '../../../src/registry/index.js';
import { FakeServer, sendError, sendJson } from './fake-server.js';

const manifestDoc = {
  schemaVersion: 2,
  mediaType: MediaType.OciManifest,
  config: { mediaType: MediaType.OciConfig, digest: `sha256:${'a'.repeat(64)}`, size: 2 },
  layers: [],
};
const manifestRaw = Buffer.from(JSON.stringify(manifestDoc));
const blob = Buffer.from('blob-bytes-'.repeat(100));
const blobDigest = digestOf(blob);

function serveManifest(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': MediaType.OciManifest, 'docker-content-digest': digestOf(manifestRaw), 'content-length': String(manifestRaw.length) });
  res.end(manifestRaw);
}

interface TokenServerState {
  issued: string[];
  /** When set, only these Basic credentials get a token. */
  require?: { user: string; pass: string };
  expiresIn?: number;
}

async function startTokenServer(state: TokenServerState, onIssue: (token: string) => void): Promise<FakeServer> {
  return FakeServer.start((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/token') return sendError(res, 404, 'NOT_FOUND', 'no');
    if (state.require) {
      const want = `Basic ${Buffer.from(`${state.require.user}:${state.require.pass}`).toString('base64')}`;
      if (req.headers.authorization !== want) return sendJson(res, 401, { details: 'incorrect username or password' });
    }
    const token = `tok-${state.issued.length + 1}`;
    state.issued.push(token);
    onIssue(token);
    sendJson(res, 200, { token, expires_in: state.expiresIn ?? 300, issued_at: new Date().toISOString() });
  });
}

/** A registry that accepts any token in `valid` and challenges otherwise. */
async function startBearerRegistry(realm: string, valid: Set<string>): Promise<FakeServer> {
  return FakeServer.start((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization ?? '';
    const scope = url.pathname.startsWith('/v2/repo/') ? 'repository:repo:pull' : '';
    if (!auth.startsWith('Bearer ') || !valid.has(auth.slice(7))) {
      return sendError(res, 401, 'UNAUTHORIZED', 'authentication required', {
        'www-authenticate': `Bearer realm="${realm}",service="fake-registry"${scope ? `,scope="${scope}"` : ''}`,
      });
    }
    if (url.pathname === '/v2/repo/manifests/latest') return serveManifest(res);
    return sendError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
  });
}

const fastRetry = { baseDelayMs: 5, maxDelayMs: 20, maxAttempts: 3 };

describe('Bearer token auth', () => {
  let tokenServer: FakeServer;
  let registry: FakeServer;
  let state: TokenServerState;
  const valid = new Set<string>();
  let client: RegistryClient | undefined;

  beforeEach(async () => {
    state = { issued: [] };
    valid.clear();
    // The fake token server's tokens are what the fake registry accepts.
    tokenServer = await startTokenServer(state, (t) => valid.add(t));
    registry = await startBearerRegistry(`${tokenServer.url}/token`, valid);
  });
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await registry.close();
    await tokenServer.close();
  });

  it('gets an anonymous token after a 401, retries, and reuses the token', async () => {
    client = new RegistryClient({ retry: fastRetry });
    const m = await client.getManifest(`${registry.host}/repo:latest`);
    assert.equal(m.descriptor.digest, digestOf(manifestRaw));
    assert.equal(tokenServer.requests.length, 1);
    const tokenUrl = new URL(tokenServer.requests[0]!.url, 'http://x');
    assert.equal(tokenUrl.searchParams.get('service'), 'fake-registry');
    assert.deepEqual(tokenUrl.searchParams.getAll('scope'), ['repository:repo:pull']);
    assert.equal(tokenServer.requests[0]!.headers.authorization, undefined);
    assert.deepEqual(registry.requests.map((r) => r.headers.authorization), [undefined, 'Bearer tok-1']);

    // Second call: the token is sent up front, no 401, no new token.
    await client.getManifest(`${registry.host}/repo:latest`);
    assert.equal(tokenServer.requests.length, 1);
    assert.equal(registry.requests.length, 3);
    assert.equal(registry.requests[2]!.headers.authorization, 'Bearer tok-1');
  });

  it('sends credentials to the token server as Basic auth', async () => {
    state.require = { user: 'alice', pass: 's3cr:et' };
    client = new RegistryClient({ retry: fastRetry, credentials: new StaticCredentials({ [registry.host]: { username: 'alice', password: 's3cr:et' } }) });
    await client.getManifest(`${registry.host}/repo:latest`);
    const tr = tokenServer.requests.at(-1)!;
    assert.equal(tr.headers.authorization, `Basic ${Buffer.from('alice:s3cr:et').toString('base64')}`);
    assert.equal(new URL(tr.url, 'http://x').searchParams.get('account'), 'alice');
  });

  it('fails with UnauthorizedError when the token server refuses the credentials', async () => {
    state.require = { user: 'alice', pass: 'right' };
    client = new RegistryClient({ retry: fastRetry, credentials: new StaticCredentials({ [registry.host]: { username: 'alice', password: 'wrong' } }) });
    await assert.rejects(client.getManifest(`${registry.host}/repo:latest`), (err: unknown) => {
      assert.ok(err instanceof UnauthorizedError, String(err));
      assert.equal(err.status, 401);
      assert.match(err.message, /token server/);
      assert.ok(!err.message.includes('wrong'), 'password must not leak into messages');
      return true;
    });
    // 4xx is never retried: one registry request, one token request.
    assert.equal(registry.requests.length, 1);
    assert.equal(tokenServer.requests.length, 1);
  });

  it('fetches a fresh token when the registry rejects a cached one', async () => {
    client = new RegistryClient({ retry: fastRetry });
    await client.getManifest(`${registry.host}/repo:latest`);
    valid.delete('tok-1'); // revoked server-side
    await client.getManifest(`${registry.host}/repo:latest`);
    assert.deepEqual(state.issued, ['tok-1', 'tok-2']);
    assert.deepEqual(registry.requests.map((r) => r.headers.authorization), [undefined, 'Bearer tok-1', 'Bearer tok-1', 'Bearer tok-2']);
  });

  it('gives up with UnauthorizedError when even fresh tokens are refused', async () => {
    client = new RegistryClient({ retry: fastRetry });
    tokenServer.handler = (_req, res) => sendJson(res, 200, { token: 'never-valid' });
    await assert.rejects(client.getManifest(`${registry.host}/repo:latest`), (err: unknown) => err instanceof UnauthorizedError && err.status === 401);
    assert.ok(registry.requests.length <= 3, `bounded auth rounds, got ${registry.requests.length}`);
  });

  it('one token fetch serves concurrent requests', async () => {
    client = new RegistryClient({ retry: fastRetry });
    // Warm the challenge so all requests go for a token up front.
    await client.getManifest(`${registry.host}/repo:latest`);
    valid.clear();
    state.issued.length = 0;
    const c = client;
    const before = tokenServer.requests.length;
    // Force a new scope so the cache misses.
    registry.handler = (req, res) => {
      const auth = req.headers.authorization ?? '';
      if (!valid.has(auth.slice(7))) {
        return sendError(res, 401, 'UNAUTHORIZED', 'x', { 'www-authenticate': `Bearer realm="${tokenServer.url}/token",service="fake-registry"` });
      }
      serveManifest(res);
    };
    await Promise.all(Array.from({ length: 8 }, () => c.getManifest(`${registry.host}/other:latest`)));
    assert.equal(tokenServer.requests.length - before, 1);
  });
});

describe('Basic auth', () => {
  let registry: FakeServer;
  afterEach(async () => registry?.close());

  it('answers a Basic challenge with configured credentials', async () => {
    const want = `Basic ${Buffer.from('bob:pw').toString('base64')}`;
    registry = await FakeServer.start((req, res) => {
      if (req.headers.authorization !== want) return sendError(res, 401, 'UNAUTHORIZED', 'x', { 'www-authenticate': 'Basic realm="Registry Realm"' });
      serveManifest(res);
    });
    const client = new RegistryClient({ retry: fastRetry, credentials: new StaticCredentials({ [registry.host]: { username: 'bob', password: 'pw' } }) });
    await client.getManifest(`${registry.host}/repo:latest`);
    await client.getManifest(`${registry.host}/repo:latest`);
    // 401 once, then Basic sent up front.
    assert.deepEqual(registry.requests.map((r) => r.headers.authorization), [undefined, want, want]);
    await client.close();
  });

  it('fails with UnauthorizedError without credentials', async () => {
    registry = await FakeServer.start((_req, res) => sendError(res, 401, 'UNAUTHORIZED', 'x', { 'www-authenticate': 'Basic realm="r"' }));
    const client = new RegistryClient({ retry: fastRetry });
    await assert.rejects(client.getManifest(`${registry.host}/repo:latest`), (err: unknown) => {
      assert.ok(err instanceof UnauthorizedError);
      assert.equal(err.status, 401);
      assert.match(err.message, new RegExp(`${registry.host}/repo:latest`));
      return true;
    });
    assert.equal(registry.requests.length, 1);
    await client.close();
  });

  it('maps 403 to UnauthorizedError with the registry error code', async () => {
    registry = await FakeServer.start((_req, res) => sendError(res, 403, 'DENIED', 'requested access to the resource is denied'));
    const client = new RegistryClient({ retry: fastRetry });
    await assert.rejects(client.getManifest(`${registry.host}/repo:latest`), (err: unknown) => {
      assert.ok(err instanceof UnauthorizedError);
      assert.equal(err.status, 403);
      assert.equal(err.code, 'DENIED');
      assert.match(err.message, /HTTP 403/);
      assert.match(err.message, /DENIED: requested access/);
      return true;
    });
    await client.close();
  });
});

describe('redirects', () => {
  let registry: FakeServer;
  let storage: FakeServer;
  after(async () => {
    await registry?.close();
    await storage?.close();
  });

  it('follows a blob redirect to another host without the Authorization header', async () => {
    storage = await FakeServer.start((req, res) => {
      if (req.url?.startsWith('/bucket/blob?sig=')) {
        res.writeHead(200, { 'content-length': String(blob.length) });
        return res.end(blob);
      }
      sendError(res, 404, 'NOPE', 'no');
    });
    const want = `Basic ${Buffer.from('u:p').toString('base64')}`;
    registry = await FakeServer.start((req, res) => {
      if (req.headers.authorization !== want) return sendError(res, 401, 'UNAUTHORIZED', 'x', { 'www-authenticate': 'Basic realm="r"' });
      if (req.url === `/v2/repo/blobs/${blobDigest}`) {
        res.writeHead(307, { location: `${storage.url}/bucket/blob?sig=abc` });
        return res.end();
      }
      if (req.url === '/v2/repo/blobs/same-origin') {
        res.writeHead(302, { location: `/v2/repo/blobs/${blobDigest}` });
        return res.end();
      }
      sendError(res, 404, 'BLOB_UNKNOWN', 'x');
    });
    const client = new RegistryClient({ retry: fastRetry, credentials: new StaticCredentials({ [registry.host]: { username: 'u', password: 'p' } }) });
    const got = await client.fetchBlob(`${registry.host}/repo`, blobDigest);
    assert.deepEqual(got, blob);
    assert.equal(storage.requests.length, 1);
    assert.equal(storage.requests[0]!.headers.authorization, undefined);
    assert.equal(registry.requests.at(-1)!.headers.authorization, want);

    // Range reads follow the same path and keep their Range header.
    const slice = await client.readRange(`${registry.host}/repo`, blobDigest, 10, 5);
    assert.deepEqual(slice, blob.subarray(10, 15));
    assert.equal(storage.requests.at(-1)!.headers.authorization, undefined);
    await client.close();
  });
});

describe('Authenticator token cache', () => {
  it('caches per scope, reuses broader tokens, and refetches after expiry', async () => {
    let now = 1_000_000;
    const calls: URL[] = [];
    const http: AuthHttp = async ({ url }) => {
      calls.push(url);
      return { status: 200, headers: {}, text: JSON.stringify({ access_token: `t${calls.length}`, expires_in: 60 }) };
    };
    const auth = new Authenticator({ http, now: () => now });
    const challenge = 'Bearer realm="https://auth.example/token",service="svc"';
    const pull = [ScopeSet.repository('a', ['pull'])];
    const pushPull = [ScopeSet.repository('a', ['pull', 'push'])];

    assert.equal(await auth.respond('reg', challenge, pushPull, undefined, {}), 'Bearer t1');
    assert.deepEqual(calls[0]!.searchParams.getAll('scope'), ['repository:a:pull,push']);
    // A pull,push token covers a pull request.
    assert.equal(await auth.authorize('reg', pull, {}), 'Bearer t1');
    // Another repository needs another token.
    assert.equal(await auth.authorize('reg', [ScopeSet.repository('b', ['pull'])], {}), 'Bearer t2');
    assert.equal(calls.length, 2);

    // 60 s tokens are dropped 12 s early.
    now += 47_000;
    assert.equal(await auth.authorize('reg', pull, {}), 'Bearer t1');
    now += 2_000;
    assert.equal(await auth.authorize('reg', pull, {}), 'Bearer t3');
    assert.equal(calls.length, 3);

    // A refused token is evicted and replaced.
    assert.equal(await auth.respond('reg', challenge, pull, 'Bearer t3', {}), 'Bearer t4');
    assert.equal(await auth.authorize('reg', pull, {}), 'Bearer t4');
  });

  it("one caller's abort does not cancel a token fetch others wait for", async () => {
    let calls = 0;
    const http: AuthHttp = async ({ signal }) => {
      calls++;
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(signal?.aborted, false);
      return { status: 200, headers: {}, text: '{"token":"shared"}' };
    };
    const auth = new Authenticator({ http });
    const challenge = 'Bearer realm="https://a/t",service="s"';
    const ac = new AbortController();
    const reason = new Error('first caller left');
    const first = auth.respond('reg', challenge, ['repository:x:pull'], undefined, {}, ac.signal);
    const second = auth.respond('reg', challenge, ['repository:x:pull'], undefined, {});
    setTimeout(() => ac.abort(reason), 20);
    await assert.rejects(first, (err: unknown) => err === reason);
    assert.equal(await second, 'Bearer shared');
    assert.equal(calls, 1);
  });

  it('merges the challenge scope with the requested one', async () => {
    const calls: URL[] = [];
    const auth = new Authenticator({
      http: async ({ url }) => {
        calls.push(url);
        return { status: 200, headers: {}, text: '{"token":"x"}' };
      },
    });
    await auth.respond('reg', 'Bearer realm="https://a/t",scope="repository:b:pull"', [ScopeSet.repository('a', ['push', 'pull'])], undefined, {});
    assert.deepEqual(calls[0]!.searchParams.getAll('scope'), ['repository:a:pull,push', 'repository:b:pull']);
  });

  it('uses the refresh-token grant for identity tokens and raw registry tokens as is', async () => {
    const seen: Array<{ method: string; body?: string }> = [];
    const http: AuthHttp = async ({ method, body }) => {
      seen.push({ method, ...(body !== undefined ? { body } : {}) });
      return { status: 200, headers: {}, text: '{"access_token":"oauth"}' };
    };
    const creds = new StaticCredentials({ sso: { identityToken: 'refresh' }, raw: { registryToken: 'given' } });
    const auth = new Authenticator({ http, credentials: creds });
    assert.equal(await auth.respond('sso', 'Bearer realm="https://a/t",service="s"', ['repository:x:pull'], undefined, {}), 'Bearer oauth');
    assert.equal(seen[0]!.method, 'POST');
    const form = new URLSearchParams(seen[0]!.body);
    assert.equal(form.get('grant_type'), 'refresh_token');
    assert.equal(form.get('refresh_token'), 'refresh');
    assert.equal(form.get('scope'), 'repository:x:pull');
    assert.equal(await auth.respond('raw', 'Bearer realm="https://a/t"', ['repository:x:pull'], undefined, {}), 'Bearer given');
    assert.equal(seen.length, 1);
  });
});
