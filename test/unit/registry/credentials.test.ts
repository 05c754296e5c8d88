import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ChainedCredentials,
  DockerConfigCredentials,
  StaticCredentials,
  defaultDockerConfigPath,
  normalizeRegistryHost,
  parseDockerConfig,
} from '../../../src/registry/index.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('normalizeRegistryHost', () => {
  it('folds Docker Hub names and strips scheme and path', () => {
    for (const k of ['https://index.docker.io/v1/', 'index.docker.io', 'registry-1.docker.io', 'docker.io', 'HTTPS://Docker.IO']) {
      assert.equal(normalizeRegistryHost(k), 'docker.io', k);
    }
    assert.equal(normalizeRegistryHost('http://127.0.0.1:5000/v2/'), '127.0.0.1:5000');
    assert.equal(normalizeRegistryHost('Registry.Example.com'), 'registry.example.com');
  });
});

describe('parseDockerConfig', () => {
  it('reads auth (base64), username/password, identitytoken and registrytoken', () => {
    const cfg = parseDockerConfig(
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass:with:colons') },
          'registry.example.com': { username: 'u', password: 'p' },
          'http://127.0.0.1:5000': { auth: b64('a:b'), username: 'ignored', password: 'ignored' },
          'sso.example.com': { auth: b64('<token>:'), identitytoken: 'refresh-me' },
          'tok.example.com': { registrytoken: 'raw-bearer' },
          'empty.example.com': {},
        },
        credsStore: 'desktop',
        credHelpers: { 'gcr.io': 'gcloud' },
      }),
    );
    assert.deepEqual(cfg.auths.get('docker.io'), { username: 'hubuser', password: 'hub:pass:with:colons' });
    assert.deepEqual(cfg.auths.get('registry.example.com'), { username: 'u', password: 'p' });
    assert.deepEqual(cfg.auths.get('127.0.0.1:5000'), { username: 'a', password: 'b' });
    assert.equal(cfg.auths.get('sso.example.com')?.identityToken, 'refresh-me');
    assert.deepEqual(cfg.auths.get('tok.example.com'), { registryToken: 'raw-bearer' });
    assert.equal(cfg.auths.has('empty.example.com'), false);
    assert.equal(cfg.credsStore, 'desktop');
    assert.equal(cfg.credHelpers.get('gcr.io'), 'gcloud');
    assert.deepEqual(cfg.warnings, []);
  });

  it('skips malformed entries with a warning that does not leak secrets', () => {
    const cfg = parseDockerConfig(JSON.stringify({ auths: { 'a.io': { auth: b64('nocolon-secret') }, 'b.io': { auth: '!!!' }, 'c.io': 'x' } }));
    assert.equal(cfg.auths.size, 0);
    assert.equal(cfg.warnings.length, 3);
    assert.ok(cfg.warnings.every((w) => !w.includes('nocolon-secret')));
  });

  it('throws on invalid JSON and tolerates a config without auths', () => {
    assert.throws(() => parseDockerConfig('{nope'));
    assert.equal(parseDockerConfig('{}').auths.size, 0);
  });
});

describe('defaultDockerConfigPath', () => {
  it('honours DOCKER_CONFIG, else ~/.docker', () => {
    assert.equal(defaultDockerConfigPath({ DOCKER_CONFIG: '/etc/dc' }, '/home/u'), '/etc/dc/config.json');
    assert.equal(defaultDockerConfigPath({}, '/home/u'), '/home/u/.docker/config.json');
  });
});

describe('DockerConfigCredentials', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lazysnap-creds-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('looks credentials up by host and reloads the file when it changes', async () => {
    const path = join(dir, 'config.json');
    writeFileSync(path, JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: b64('u1:p1') } } }));
    const src = new DockerConfigCredentials({ path, useHelpers: false });
    assert.deepEqual(await src.lookup('docker.io'), { username: 'u1', password: 'p1' });
    assert.deepEqual(await src.lookup('registry-1.docker.io'), { username: 'u1', password: 'p1' });
    assert.equal(await src.lookup('ghcr.io'), undefined);

    writeFileSync(path, JSON.stringify({ auths: { 'ghcr.io': { username: 'g', password: 'h' } } }));
    const later = new Date(Date.now() + 5000);
    utimesSync(path, later, later);
    assert.deepEqual(await src.lookup('ghcr.io'), { username: 'g', password: 'h' });
    assert.equal(await src.lookup('docker.io'), undefined);
  });

  it('a missing file means no credentials', async () => {
    const src = new DockerConfigCredentials({ path: join(dir, 'absent.json') });
    assert.equal(await src.lookup('docker.io'), undefined);
  });

  it('runs docker-credential helpers from credHelpers and credsStore', async () => {
    const bin = join(dir, 'bin');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(bin, { recursive: true });
    const helper = join(bin, 'docker-credential-fake');
    writeFileSync(
      helper,
      [
        '#!/bin/sh',
        'read url',
        'case "$url" in',
        '  helped.example.com) echo \'{"ServerURL":"helped.example.com","Username":"hu","Secret":"hs"}\' ;;',
        '  https://index.docker.io/v1/) echo \'{"ServerURL":"x","Username":"<token>","Secret":"idtok"}\' ;;',
        '  *) echo "credentials not found in native keychain"; exit 1 ;;',
        'esac',
        '',
      ].join('\n'),
    );
    chmodSync(helper, 0o755);
    const path = join(dir, 'helpers.json');
    writeFileSync(path, JSON.stringify({ credHelpers: { 'helped.example.com': 'fake' }, credsStore: 'fake', auths: { 'file.example.com': { auth: b64('f:g') } } }));
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath ?? ''}`;
    try {
      const src = new DockerConfigCredentials({ path });
      assert.deepEqual(await src.lookup('helped.example.com'), { username: 'hu', password: 'hs' });
      assert.deepEqual(await src.lookup('docker.io'), { identityToken: 'idtok' });
      assert.deepEqual(await src.lookup('file.example.com'), { username: 'f', password: 'g' });
      assert.equal(await src.lookup('unknown.example.com'), undefined);
    } finally {
      process.env.PATH = oldPath;
    }
  });
});

describe('StaticCredentials and ChainedCredentials', () => {
  it('normalises hosts and falls through in order', async () => {
    const a = new StaticCredentials({ 'https://index.docker.io/v1/': { username: 'hub', password: 'x' } });
    const b = new StaticCredentials(new Map([['127.0.0.1:5000', { username: 'local', password: 'y' }]]));
    const chain = new ChainedCredentials([a, b]);
    assert.equal((await chain.lookup('docker.io'))?.username, 'hub');
    assert.equal((await chain.lookup('127.0.0.1:5000'))?.username, 'local');
    assert.equal(await chain.lookup('nowhere'), undefined);
  });
});
