import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DEFAULT_CONFIG, loadConfig, parseConfig } from '../../../src/config/index.js';
import { runServeToExit } from '../../harness/daemon.js';

describe('[cri_keychain] config', () => {
  it('is off by default and forwards to containerd\'s socket, as in stargz-snapshotter', () => {
    assert.deepEqual(DEFAULT_CONFIG.criKeychain, { enableKeychain: false, imageServicePath: '/run/containerd/containerd.sock' });
  });

  it('reads stargz-snapshotter\'s key names over the defaults', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'lazysnap-config-')), 'config.toml');
    writeFileSync(path, '[cri_keychain]\nenable_keychain = true\nimage_service_path = "/run/k3s/containerd/containerd.sock"\n');
    const config = await loadConfig(path, {});
    assert.deepEqual(config.criKeychain, { enableKeychain: true, imageServicePath: '/run/k3s/containerd/containerd.sock' });
    writeFileSync(path, '[cri_keychain]\nenable_keychain = true\n');
    assert.equal((await loadConfig(path, {})).criKeychain.imageServicePath, '/run/containerd/containerd.sock');
  });

  it('refuses wrong types, relative paths and unknown keys naming the key', () => {
    assert.throws(() => parseConfig('[cri_keychain]\nenable_keychain = "yes"'), /\[cri_keychain\] enable_keychain must be true or false, got "yes"/);
    assert.throws(() => parseConfig('[cri_keychain]\nimage_service_path = "run/containerd.sock"'), /\[cri_keychain\] image_service_path must be an absolute path/);
    assert.throws(() => parseConfig('[cri_keychain]\nenable = true'), (err: Error) => err instanceof ConfigError && /unknown key \[cri_keychain\] "enable"/.test(err.message));
    assert.throws(() => parseConfig('cri_keychain = true'), /\[cri_keychain\] must be a table/);
  });

  it('the daemon refuses to forward the image service to its own socket, before creating anything', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lazysnap-keychain-loop-'));
    const socket = join(dir, 'lazysnap.sock');
    const config = join(dir, 'config.toml');
    writeFileSync(config, `[cri_keychain]\nenable_keychain = true\nimage_service_path = "${socket}"\n`);
    const result = runServeToExit(['--address', socket, '--root', join(dir, 'root'), '--config', config]);
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, /\[cri_keychain\] image_service_path .* is lazysnap's own socket/);
    assert.equal(existsSync(join(dir, 'root')), false, 'nothing is created');
  });
});
