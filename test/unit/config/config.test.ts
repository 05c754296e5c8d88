import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DEFAULT_CONFIG, loadConfig, parseConfig, parseListenAddress } from '../../../src/config/index.js';

describe('config', () => {
  it('flags override the file, which overrides defaults', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lazysnap-config-'));
    const path = join(dir, 'config.toml');
    writeFileSync(path, 'root = "/data/lazysnap"\nlog_level = "debug"\naddress = "/run/x.sock"\n');
    const config = await loadConfig(path, { address: '/run/flag.sock', root: undefined });
    assert.equal(config.address, '/run/flag.sock');
    assert.equal(config.root, '/data/lazysnap');
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.metricsAddress, DEFAULT_CONFIG.metricsAddress);
  });

  it('a missing file named by the user is an error; an empty file means defaults', async () => {
    await assert.rejects(loadConfig('/nonexistent/lazysnap.toml', {}), ConfigError);
    assert.deepEqual(await loadConfig('/dev/null', {}), { ...DEFAULT_CONFIG });
  });

  it('rejects unknown keys, wrong types and bad TOML with the path in the message', () => {
    assert.throws(() => parseConfig('adress = "/x"', '/etc/l.toml'), /config \/etc\/l.toml: unknown key "adress"/);
    assert.throws(() => parseConfig('root = 3'), /root must be a non-empty string/);
    assert.throws(() => parseConfig('log_level = "loud"'), /log_level must be one of/);
    assert.throws(() => parseConfig('root = '), /invalid TOML/);
  });

  it('merges [remote] and [registry] tables over their defaults', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lazysnap-config-'));
    const path = join(dir, 'config.toml');
    writeFileSync(path, '[remote]\nfetch_timeout_seconds = 5\nallow_unverified = true\n[registry]\ninsecure_hosts = ["reg.local:5000"]\n');
    const config = await loadConfig(path, {});
    assert.equal(config.remote.fetchTimeoutSeconds, 5);
    assert.equal(config.remote.allowUnverified, true);
    assert.equal(config.remote.prefetch, DEFAULT_CONFIG.remote.prefetch);
    assert.deepEqual(config.registry.insecureHosts, ['reg.local:5000']);
    assert.equal(config.registry.platform, 'linux/amd64');
    assert.throws(() => parseConfig('[remote]\nprefech = true'), /unknown key \[remote\] "prefech"/);
    assert.throws(() => parseConfig('[remote]\nfetch_timeout_seconds = -1'), /\[remote\] fetch_timeout_seconds must be an integer from 1 to 3600, got -1/);
    assert.throws(() => parseConfig('remote = 3'), /\[remote\] must be a table/);
  });

  // Every numeric key with the range the daemon can honour. A value outside
  // it was accepted before and broke every layer later (a timeout past Node's
  // timer overflowed, a fractional concurrency failed every layer open).
  const NUMERIC_KEYS = [
    { key: 'fetch_timeout_seconds', min: 1, max: 3600 },
    { key: 'background_fetch_concurrency', min: 1, max: 64 },
    { key: 'background_fetch_idle_seconds', min: 0, max: 3600 },
    { key: 'background_fetch_bandwidth_mib', min: 0, max: 65536 },
    { key: 'memory_cache_mib', min: 0, max: 65536 },
    { key: 'disk_cache_mib', min: 0, max: 16 * 1024 * 1024 },
    { key: 'toc_memory_mib', min: 16, max: 65536 },
  ];

  for (const { key, min, max } of NUMERIC_KEYS) {
    const bad = [
      { why: 'non-integer', value: String(min + 1.5) },
      { why: 'negative', value: '-1' },
      { why: 'past its maximum', value: String(max + 1) },
      { why: 'a string', value: `"${max}"` },
      ...(min > 0 ? [{ why: 'zero', value: '0' }] : []),
      ...(min > 1 ? [{ why: 'below its minimum', value: String(min - 1) }] : []),
    ];
    for (const { why, value } of bad) {
      it(`[remote] ${key} = ${value} (${why}) is refused naming file, key and range`, async () => {
        const dir = mkdtempSync(join(tmpdir(), 'lazysnap-config-'));
        const path = join(dir, 'config.toml');
        writeFileSync(path, `[remote]\n${key} = ${value}\n`);
        await assert.rejects(loadConfig(path, {}), (err: Error) => {
          assert.ok(err instanceof ConfigError, String(err));
          const expected = `config ${path}: [remote] ${key} must be an integer from ${min} to ${max}, got ${value}`;
          assert.equal(err.message, expected);
          return true;
        });
      });
    }
    it(`[remote] ${key} accepts ${min} and ${max}`, () => {
      for (const value of [min, max]) {
        assert.deepEqual(parseConfig(`[remote]\n${key} = ${value}\n`).remote, { [fieldOf(key)]: value });
      }
    });
  }

  it('[remote] toc_memory_mib defaults to 512', () => {
    assert.equal(DEFAULT_CONFIG.remote.tocMemoryMiB, 512);
  });

  it('metrics_address must be host:port with a port from 1 to 65535, in the file and as a flag', async () => {
    for (const text of ['notaport', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', 'localhost:http', '[::1', '[nothost]:9100', 'a b:9100']) {
      assert.throws(() => parseConfig(`metrics_address = ${JSON.stringify(text)}`, '/etc/l.toml'), (err: Error) => {
        assert.match(err.message, /^config \/etc\/l\.toml: metrics_address must be HOST:PORT .*port from 1 to 65535/);
        return true;
      }, text);
      await assert.rejects(loadConfig('/dev/null', { metricsAddress: text }), /^ConfigError: --metrics-address must be HOST:PORT/, text);
    }
    for (const text of ['', ':9100', '127.0.0.1:9100', 'node.example:65535', '[::1]:1']) {
      assert.equal(parseConfig(`metrics_address = ${JSON.stringify(text)}`).metricsAddress, text);
    }
    assert.deepEqual(parseListenAddress(':9100'), { host: '127.0.0.1', port: 9100 });
    assert.deepEqual(parseListenAddress('[::1]:9100'), { host: '::1', port: 9100 });
  });

  it('flags are checked with the same rules as the file', async () => {
    await assert.rejects(loadConfig('/dev/null', { root: '' }), /^ConfigError: --root must be a non-empty string/);
    await assert.rejects(loadConfig('/dev/null', { remote: { fetchTimeoutSeconds: 3_000_000 } }), /\[remote\] fetch_timeout_seconds must be an integer from 1 to 3600/);
  });

  it('keys named like object properties are unknown keys, at the top level, in sections and as sections', () => {
    const documents = ['toString = {}', 'constructor = 1', '__proto__ = 1', 'hasOwnProperty = "x"', '[remote]\nconstructor = 1', '[remote]\n__proto__ = { a = 1 }', '[registry]\nvalueOf = 1', '[constructor]\nx = 1', '[__proto__]\nroot = "/x"'];
    for (const text of documents) {
      assert.throws(() => parseConfig(text, '/etc/l.toml'), (err: Error) => {
        assert.ok(err instanceof ConfigError, `${text}: ${String(err)}`);
        assert.match(err.message, /^config \/etc\/l\.toml: unknown key /, text);
        return true;
      });
    }
  });
});

function fieldOf(key: string): string {
  return key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()).replace(/Mib$/, 'MiB');
}
