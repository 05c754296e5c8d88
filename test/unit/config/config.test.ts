import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DEFAULT_CONFIG, loadConfig, parseConfig } from '../../../src/config/index.js';

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
    assert.throws(() => parseConfig('[remote]\nfetch_timeout_seconds = -1'), /must be a positive number/);
    assert.throws(() => parseConfig('remote = 3'), /\[remote\] must be a table/);
  });
});
