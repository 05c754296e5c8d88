import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import pino from 'pino';
import { Writable } from 'node:stream';
import { CriKeychain } from '../../../src/cri/index.js';
import { Authenticator, ChainedCredentials, StaticCredentials, type AuthHttp } from '../../../src/registry/index.js';

const SECRET = 's3cret-pa55';
const basic = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString('base64');

describe('CRI keychain', () => {
  it('answers for the image it was given, by reference or by repository, and not for other repositories or registries', async () => {
    const keychain = new CriKeychain();
    assert.equal(keychain.remember('reg.example.com:5000/team/app:v1', { username: 'u', password: SECRET }), 'kept');
    const creds = { username: 'u', password: SECRET };
    assert.deepEqual(await keychain.lookup('reg.example.com:5000', undefined, { repository: 'team/app', ref: 'reg.example.com:5000/team/app:v1' }), creds);
    // A layer read pinned by digest names the repository, not the tag that was pulled.
    assert.deepEqual(await keychain.lookup('reg.example.com:5000', undefined, { repository: 'team/app', ref: 'reg.example.com:5000/team/app@sha256:' + 'a'.repeat(64) }), creds);
    assert.equal(await keychain.lookup('reg.example.com:5000', undefined, { repository: 'team/other' }), undefined);
    assert.equal(await keychain.lookup('other.example.com', undefined, { repository: 'team/app' }), undefined);
    // Host-wide lookups (no repository) get nothing: a pod's secret is not the node's.
    assert.equal(await keychain.lookup('reg.example.com:5000'), undefined);
  });

  it('reads kubelet\'s AuthConfig as containerd does: auth field, tokens, server_address of the image\'s registry only', async () => {
    const keychain = new CriKeychain();
    const scope = (repository: string) => ({ repository });
    assert.equal(keychain.remember('busybox', { auth: basic('hub', `${SECRET}\0\0`), serverAddress: 'https://index.docker.io/v1/' }), 'kept');
    assert.deepEqual(await keychain.lookup('docker.io', undefined, scope('library/busybox')), { username: 'hub', password: SECRET });
    assert.equal(keychain.remember('ghcr.io/o/tok:1', { identityToken: 'refresh-tok', registryToken: 'bearer-tok' }), 'kept');
    assert.deepEqual(await keychain.lookup('ghcr.io', undefined, scope('o/tok')), { identityToken: 'refresh-tok', registryToken: 'bearer-tok' });
    assert.equal(keychain.remember('ghcr.io/o/elsewhere:1', { username: 'u', password: SECRET, serverAddress: 'https://quay.io' }), 'other-registry');
    assert.equal(await keychain.lookup('ghcr.io', undefined, scope('o/elsewhere')), undefined);
    assert.equal(keychain.remember('ghcr.io/o/bad:1', { auth: '!!not base64!!' }), 'malformed');
    assert.equal(keychain.remember('ghcr.io/o/nocolon:1', { auth: Buffer.from('justuser').toString('base64') }), 'malformed');
    assert.throws(() => keychain.remember('Not A Reference', { username: 'u', password: SECRET }), /invalid reference/);
  });

  it('a later pull without credentials, or RemoveImage, forgets the image\'s credentials', async () => {
    const keychain = new CriKeychain();
    keychain.remember('reg.example.com/app:v1', { username: 'u', password: SECRET });
    assert.equal(keychain.remember('reg.example.com/app:v1', {}), 'none');
    assert.equal(await keychain.lookup('reg.example.com', undefined, { repository: 'app' }), undefined);
    keychain.remember('reg.example.com/app:v1', { username: 'u', password: SECRET });
    keychain.remember('reg.example.com/app:v2', { username: 'u2', password: SECRET });
    // The most recent pull of the repository wins for reads that name no tag.
    assert.equal((await keychain.lookup('reg.example.com', undefined, { repository: 'app' }))?.username, 'u2');
    assert.equal(keychain.forget('reg.example.com/app:v2'), true);
    assert.equal((await keychain.lookup('reg.example.com', undefined, { repository: 'app' }))?.username, 'u');
    // Kubelet removes by image ID, which names no credentials.
    assert.equal(keychain.forget(`sha256:${'b'.repeat(64)}`), false);
  });

  it('is bounded: least recently used images are forgotten past maxImages, idle ones after idleMs', async () => {
    let now = 1_000_000;
    const keychain = new CriKeychain({ maxImages: 2, idleMs: 60_000, now: () => now });
    keychain.remember('r.io/a:1', { username: 'a', password: SECRET });
    keychain.remember('r.io/b:1', { username: 'b', password: SECRET });
    assert.equal((await keychain.lookup('r.io', undefined, { repository: 'a' }))?.username, 'a');
    keychain.remember('r.io/c:1', { username: 'c', password: SECRET });
    assert.equal(keychain.size, 2);
    assert.equal(await keychain.lookup('r.io', undefined, { repository: 'b' }), undefined, 'b was the least recently used');
    assert.equal((await keychain.lookup('r.io', undefined, { repository: 'a' }))?.username, 'a');
    // Use renews: a is read again at +50 s, so at +100 s only c (untouched since the start) has expired.
    now += 50_000;
    assert.ok(await keychain.lookup('r.io', undefined, { repository: 'a' }));
    now += 50_000;
    assert.ok(await keychain.lookup('r.io', undefined, { repository: 'a' }));
    assert.equal(await keychain.lookup('r.io', undefined, { repository: 'c' }), undefined);
  });

  it('never shows a secret when printed, serialised or logged', () => {
    const keychain = new CriKeychain();
    keychain.remember('reg.example.com/app:v1', { username: 'u', password: SECRET, identityToken: `${SECRET}-id`, registryToken: `${SECRET}-reg` });
    keychain.remember('reg.example.com/app:v2', { auth: basic('u', SECRET) });
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _enc, done) => { lines.push(String(chunk)); done(); } });
    pino({ level: 'trace' }, sink).info({ keychain }, 'state');
    for (const text of [inspect(keychain, { depth: 10, showHidden: true }), JSON.stringify(keychain), lines.join('')]) {
      assert.ok(!text.includes(SECRET), text);
      assert.ok(!text.includes(basic('u', SECRET)), text);
    }
  });

  it('the authenticator asks it with the repository of the request\'s scope, ahead of the docker config', async () => {
    const keychain = new CriKeychain();
    keychain.remember('127.0.0.1:5000/private/app:v1', { username: 'pod', password: SECRET });
    const seen: string[] = [];
    const http: AuthHttp = async (req) => {
      seen.push(req.headers.authorization ?? 'none');
      return { status: 200, headers: {}, text: '{"token":"t"}' };
    };
    const auth = new Authenticator({ credentials: new ChainedCredentials([keychain, new StaticCredentials({ '127.0.0.1:5000': { username: 'node', password: 'n' } })]), http });
    const init = { ref: '127.0.0.1:5000/private/app:v1' };
    const answer = await auth.respond('127.0.0.1:5000', 'Basic realm="r"', ['repository:private/app:pull'], undefined, init);
    assert.equal(answer, `Basic ${basic('pod', SECRET)}`);
    // Another repository on the same registry falls through to the node's credentials.
    const other = await auth.respond('127.0.0.1:5000', 'Basic realm="r"', ['repository:public/base:pull'], undefined, { ref: '127.0.0.1:5000/public/base:1' });
    assert.equal(other, `Basic ${basic('node', 'n')}`);
    // Bearer: the token request carries the pod's credentials.
    await auth.respond('127.0.0.1:5000', 'Bearer realm="http://127.0.0.1:5001/token",service="reg"', ['repository:private/app:pull'], undefined, init);
    assert.deepEqual(seen, [`Basic ${basic('pod', SECRET)}`]);
  });
});
