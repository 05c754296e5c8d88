// `lazysnap status` without --json: what an operator reads at a glance.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatStatus, type DaemonStatus } from '../../../src/admin/index.js';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;

function status(overrides: Partial<DaemonStatus> = {}): DaemonStatus {
  return {
    version: '1.2.3',
    pid: 42,
    startedAt: '2026-01-01T00:00:00.000Z',
    uptimeSeconds: 3725,
    address: '/run/lazysnap/lazysnap.sock',
    root: '/var/lib/lazysnap',
    config: '/etc/lazysnap/config.toml',
    snapshots: { active: 1, committed: 2, view: 0, remote: 2 },
    remote: {
      enabled: true,
      layers: [
        { ref: 'r.example/app:1', digest: A, tocDigest: A, size: 3 * 1024 * 1024, chunkBytes: 2 * 1024 * 1024, cachedBytes: 1024 * 1024, cachedPercent: 50, fetchedBytes: 1024 * 1024 + 512, backgroundFetch: 'fetching', mountpoint: '/var/lib/lazysnap/layers/a', references: 1 },
        { ref: 'r.example/app:1', digest: B, tocDigest: B, chunkBytes: 100, cachedBytes: 100, cachedPercent: 100, fetchedBytes: 0, backgroundFetch: 'done', references: 0 },
      ],
    },
    mounts: [{ mountpoint: '/var/lib/lazysnap/layers/a', digest: A, references: 1 }],
    caches: {
      memory: { bytes: 1024, entries: 1, limitBytes: 256 * 1024 * 1024, hits: 9 },
      disk: { bytes: 0, entries: 0, limitBytes: 0, hits: 0 },
      misses: 1,
      hitRatio: 0.9,
      toc: { files: 2, bytes: 2048 },
    },
    registryErrors: { windowSeconds: 600, inWindow: 0, total: 0, recent: [] },
    ...overrides,
  };
}

describe('status table', () => {
  it('shows the daemon, snapshots by kind, one row per layer with short digest, cached % and background state', () => {
    const text = formatStatus(status());
    assert.match(text, /^lazysnap 1\.2\.3 {2}pid 42 {2}up 1h2m {2}config \/etc\/lazysnap\/config\.toml$/m);
    assert.match(text, /^Snapshots: 1 active, 2 committed, 0 view \(2 remote\)$/m);
    assert.match(text, /^Remote layers: 2 open, 1 mounted$/m);
    const rowA = text.split('\n').find((line) => line.includes('sha256:aaaaaaaaaaaa '))!;
    assert.match(rowA, /r\.example\/app:1 +3\.0 MiB +1\.0 MiB +50\.0% +1\.0 MiB +fetching +1$/);
    const rowB = text.split('\n').find((line) => line.includes('sha256:bbbbbbbbbbbb '))!;
    assert.match(rowB, / \? +100 B +100\.0% +0 B +done +0$/);
    assert.match(text, /^FUSE mounts: 1\n {2}\/var\/lib\/lazysnap\/layers\/a {2}sha256:aaaaaaaaaaaa {2}1 snapshot$/m);
    assert.match(text, /^Chunk cache: hit ratio 90\.0%, 1 fetched from the registry$/m);
    assert.match(text, /^ {2}memory +1\.0 KiB \/ 256\.0 MiB +1 chunk +9$/m);
    assert.match(text, /^ {2}disk +off$/m);
    assert.match(text, /^TOC cache: 2 TOCs, 2\.0 KiB$/m);
    assert.match(text, /^Registry errors in the last 10m: none \(0 since start\)$/m);
  });

  it('lists recent registry errors, and says when the ring holds fewer than happened', () => {
    const text = formatStatus(status({
      registryErrors: {
        windowSeconds: 600, inWindow: 70, total: 75,
        recent: [{ time: '2026-01-01T00:01:00.000Z', ref: 'r.example/app:1', digest: A, kind: 'range', message: 'range fetch timed out after 30000 ms' }],
      },
    }));
    assert.match(text, /^Registry errors in the last 10m: 70 \(75 since start\), latest 1$/m);
    assert.match(text, /^ {2}2026-01-01T00:01:00\.000Z {2}r\.example\/app:1 {2}sha256:aaaaaaaaaaaa {2}range: range fetch timed out after 30000 ms$/m);
  });

  it('names the FUSE manager serving the mounts, or says it is away and why, and that the layers are then unknown', () => {
    assert.match(formatStatus(status()), /^FUSE served by: the daemon itself \(\[fuse_manager\] enable = false\)$/m);
    const up = formatStatus(status({ fuseManager: { connected: true, pid: 77, version: '1.2.3', startedAt: '2026-01-01T00:00:00.000Z', socket: '/var/lib/lazysnap/fuse-manager/manager.sock', mounts: 1, restarts: 2 } }));
    assert.match(up, /^FUSE manager: pid 77 {2}version 1\.2\.3 {2}since 2026-01-01T00:00:00\.000Z {2}1 mount {2}2 restarts seen {2}socket \/var\/lib\/lazysnap\/fuse-manager\/manager\.sock$/m);
    const away = formatStatus(status({
      remote: { enabled: true, layers: [], error: 'FUSE manager at /s: not connected' },
      fuseManager: { connected: false, socket: '/s', restarts: 1, error: 'connect ECONNREFUSED /s' },
    }));
    assert.match(away, /^FUSE manager: NOT CONNECTED \(\/s\): connect ECONNREFUSED \/s; 1 restart seen$/m);
    assert.match(away, /^Remote layers: unknown \(FUSE manager at \/s: not connected\)$/m);
  });

  it('says when remote layers are off', () => {
    assert.match(formatStatus(status({ remote: { enabled: false, layers: [] } })), /^Remote layers: off \(\[remote\] enabled = false\)$/m);
  });
});
