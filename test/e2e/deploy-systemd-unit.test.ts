// examples/lazysnap.service after the README's install (scripts/install.sh):
// systemd accepts it, the program it starts exists and is this lazysnap, and
// it waits for readiness so that Before=containerd.service means something.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const UNIT = fileURLToPath(new URL('../../../examples/lazysnap.service', import.meta.url));
const MANAGER_UNIT = fileURLToPath(new URL('../../../examples/lazysnap-fuse-manager.service', import.meta.url));
const PACKAGE = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

/** `Key=value` lines of one [Section] (a key may repeat). */
function section(text: string, name: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = header[1]!;
      continue;
    }
    if (current !== name) continue;
    const eq = line.indexOf('=');
    keys.set(line.slice(0, eq), [...(keys.get(line.slice(0, eq)) ?? []), line.slice(eq + 1)]);
  }
  return keys;
}

describe('examples/lazysnap.service', () => {
  const text = readFileSync(UNIT, 'utf8');
  const unit = section(text, 'Unit');
  const service = section(text, 'Service');

  it('passes systemd-analyze verify, which also checks that ExecStart exists', () => {
    // Verified together: the daemon's unit wants the manager's.
    const result = spawnSync('systemd-analyze', ['verify', UNIT, MANAGER_UNIT], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr.trim(), '');
  });

  it('is ready only on READY=1 from the daemon, before containerd, after the network is up', () => {
    assert.deepEqual(service.get('Type'), ['notify']);
    // The notification comes from systemd-notify, a child of the main process.
    assert.deepEqual(service.get('NotifyAccess'), ['all']);
    assert.deepEqual(unit.get('Before'), ['containerd.service']);
    assert.deepEqual(unit.get('Wants'), ['network-online.target lazysnap-fuse-manager.service']);
    assert.match(unit.get('After')?.join(' ') ?? '', /\blazysnap-fuse-manager\.service\b/);
    assert.match(unit.get('After')?.join(' ') ?? '', /\bnetwork-online\.target\b/);
    assert.equal(unit.get('Documentation'), undefined, 'no Documentation= pointing at files nothing installs');
  });

  it('stops only the daemon: a FUSE manager it started keeps serving the mounts of running containers', () => {
    assert.deepEqual(service.get('KillMode'), ['process']);
  });

  it('starts the installed lazysnap (on PATH as the README promises)', () => {
    const [execStart] = service.get('ExecStart') ?? [];
    const [program, command] = (execStart ?? '').split(/\s+/);
    assert.equal(command, 'serve');
    assert.equal(execFileSync(program!, ['--version'], { encoding: 'utf8' }).trim(), PACKAGE.version);
    // The README's examples call plain `lazysnap`.
    assert.equal(execFileSync('lazysnap', ['--version'], { encoding: 'utf8' }).trim(), PACKAGE.version);
  });
});

describe('examples/lazysnap-fuse-manager.service', () => {
  const text = readFileSync(MANAGER_UNIT, 'utf8');
  const unit = section(text, 'Unit');
  const service = section(text, 'Service');

  it('runs `lazysnap fuse-manager`, ready on READY=1, before the daemon and containerd', () => {
    const [execStart] = service.get('ExecStart') ?? [];
    const [program, command] = (execStart ?? '').split(/\s+/);
    assert.equal(command, 'fuse-manager');
    assert.equal(execFileSync(program!, ['fuse-manager', '--help'], { encoding: 'utf8' }).includes('--root'), true);
    assert.deepEqual(service.get('Type'), ['notify']);
    assert.deepEqual(service.get('NotifyAccess'), ['all']);
    assert.match(unit.get('Before')?.join(' ') ?? '', /\blazysnap\.service\b/);
  });
});
