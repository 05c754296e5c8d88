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
});
