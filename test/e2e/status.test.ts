// What an operator sees of a running daemon, end to end: an eStargz image
// pulled lazily through real containerd from a real registry, read by a
// container over FUSE; then `lazysnap status` (table and --json) lists its
// layers and shows them reaching 100% once the background fetch is done, the
// Prometheus endpoint shows registry, FUSE, chunk-cache and background-fetch
// series with plausible values, and every log line names its level and every
// downloaded layer its reason. One registry, containerd and daemon for all.
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DaemonStatus } from '../../src/admin/index.js';
import { startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startDaemon, type DaemonInstance } from '../harness/daemon.js';
import { assertChecksums, checksumCommand, pushTestImages, type TestImages } from '../harness/estargz-image.js';
import { lazysnapCli } from '../harness/lazysnap-cli.js';
import { freePort, makeTempDir, removeTree, waitUntil } from '../harness/process.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';
import { parsePrometheusText } from '../harness/prometheus.js';
import { RegistryClient } from '../../src/registry/index.js';
import { REMOTE_SNAPSHOT_DIGEST, REMOTE_SNAPSHOT_REF } from '../../src/containerd/labels.js';

let work: string;
let registry: RegistryInstance;
let daemon: DaemonInstance;
let containerd: ContainerdInstance;
let images: TestImages;
let metricsUrl: string;
let layerDigests: string[];

before(async () => {
  work = makeTempDir('e2e-status');
  registry = await startRegistry(work);
  images = await pushTestImages(work, registry.host, 'status');
  const registryClient = new RegistryClient();
  layerDigests = (await registryClient.resolve(images.estargzRef)).manifest.layers.map((layer) => layer.digest);
  await registryClient.close();
  const config = join(work, 'lazysnap.toml');
  // Background fetch starts after 1 s without reads instead of 5 s: the test waits for it.
  writeFileSync(config, '[remote]\nbackground_fetch_idle_seconds = 1\n');
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  daemon = await startDaemon(join(work, 'lazysnap'), ['--config', config, '--metrics-address', `127.0.0.1:${port}`]);
  containerd = await startContainerd(work, { lazysnapSocket: daemon.socket });
  const { stdout } = await lazysnapCli(['pull', '--address', containerd.socket, '--namespace', containerd.namespace, '--remote-snapshot', images.estargzRef]);
  assert.match(stdout, /3 layers: 3 remote, 0 downloaded/);
  // Read files of the lowest and highest layers, twice: the second run finds the chunks cached.
  for (const name of ['status-read-1', 'status-read-2']) {
    const out = await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', images.estargzRef, name, ...checksumCommand(images.expected)]);
    assert.deepEqual(assertChecksums(out, images.expected), []);
  }
});

after(async () => {
  await containerd?.stop();
  await daemon?.stop();
  await registry?.stop();
  removeTree(work);
});

async function statusJson(): Promise<DaemonStatus> {
  const { stdout } = await lazysnapCli(['status', '--address', daemon.socket, '--config', '/dev/null', '--json']);
  return JSON.parse(stdout) as DaemonStatus;
}

/** Prometheus text → value of the series whose name and labels are given exactly as printed. */
async function scrape(): Promise<Map<string, number>> {
  return parsePrometheusText(await (await fetch(metricsUrl)).text());
}

function value(series: Map<string, number>, name: string): number {
  const found = series.get(name);
  assert.ok(found !== undefined, `metric ${name} is missing; have: ${[...series.keys()].filter((k) => k.startsWith(name.split('{')[0]!)).join(', ')}`);
  return found;
}

describe('lazysnap status', () => {
  it('--json lists every lazily mounted layer with its ref, digest and mount, and the snapshots by kind', async () => {
    const status = await statusJson();
    assert.equal(status.remote.enabled, true);
    assert.deepEqual(status.remote.layers.map((layer) => layer.digest).sort(), [...layerDigests].sort());
    for (const layer of status.remote.layers) {
      assert.equal(layer.ref, images.estargzRef);
      assert.match(layer.tocDigest, /^sha256:[0-9a-f]{64}$/);
      assert.ok(layer.mountpoint?.startsWith(join(daemon.root, 'layers')), `layer ${layer.digest} is not mounted: ${JSON.stringify(layer)}`);
      assert.ok(layer.references >= 1);
      assert.ok(layer.chunkBytes > 0 && layer.size !== undefined && layer.size > layer.chunkBytes);
      assert.ok(layer.fetchedBytes > 0, `nothing fetched for ${layer.digest}`);
    }
    assert.equal(status.mounts.length, layerDigests.length);
    assert.equal(status.snapshots.committed, layerDigests.length);
    assert.equal(status.snapshots.remote, layerDigests.length);
    assert.ok(status.caches.memory.hits + status.caches.disk.hits > 0, 'no cache hits after reading the files twice');
    assert.ok(status.caches.toc.files >= layerDigests.length);
    assert.deepEqual(status.registryErrors.recent, []);
  });

  it('shows each layer reaching 100% once the background fetch is done, in JSON and in the table', async () => {
    let status: DaemonStatus | undefined;
    await waitUntil('background fetch of every layer', async () => {
      status = await statusJson();
      return status.remote.layers.every((layer) => layer.backgroundFetch === 'done' && layer.cachedPercent === 100);
    }, 180_000, 1_000);
    for (const layer of status!.remote.layers) assert.equal(layer.cachedBytes, layer.chunkBytes);
    const { stdout } = await lazysnapCli(['status', '--address', daemon.socket, '--config', '/dev/null']);
    assert.match(stdout, /Snapshots: 0 active, 3 committed, 0 view \(3 remote\)/);
    assert.match(stdout, /Remote layers: 3 open, 3 mounted/);
    for (const digest of layerDigests) {
      const row = stdout.split('\n').find((line) => line.includes(digest.slice(0, 'sha256:'.length + 12)));
      assert.ok(row, `no row for ${digest} in:\n${stdout}`);
      assert.match(row, /100\.0%/);
      assert.match(row, /\bdone\b/);
      assert.ok(row.includes(images.estargzRef));
    }
    assert.match(stdout, /FUSE mounts: 3/);
    assert.match(stdout, /Registry errors in the last 10m: none/);
  });

  it('the admin socket is root-only (0600)', () => {
    const info = statSync(`${daemon.socket}.admin`);
    assert.ok(info.isSocket());
    assert.equal(info.mode & 0o777, 0o600);
    assert.equal(info.uid, 0);
  });
});

describe('metrics after a lazy run', () => {
  it('registry bytes and requests, FUSE latency, chunk-cache lookups by tier, layers mounted and background-fetch progress', async () => {
    const series = await scrape();
    assert.ok(value(series, 'lazysnap_registry_received_bytes_total') > 0);
    assert.ok(value(series, 'lazysnap_registry_requests_total{kind="range",outcome="ok"}') > 0);
    assert.ok(value(series, 'lazysnap_registry_request_seconds_count{kind="range",outcome="ok"}') > 0);
    assert.ok(value(series, 'lazysnap_fuse_operation_seconds_count{operation="read"}') > 0);
    assert.ok(value(series, 'lazysnap_fuse_operation_seconds_count{operation="getattr"}') > 0);
    const hits = value(series, 'lazysnap_chunk_cache_lookups_total{tier="memory"}') + value(series, 'lazysnap_chunk_cache_lookups_total{tier="disk"}');
    assert.ok(hits > 0, 'no chunk-cache hits after re-reading');
    assert.ok(value(series, 'lazysnap_chunk_cache_lookups_total{tier="registry"}') > 0);
    assert.ok(value(series, 'lazysnap_chunk_cache_bytes{tier="disk"}') > 0);
    assert.equal(value(series, 'lazysnap_remote_layers_mounted'), 3);
    // The previous test waited for the background fetch: all of every layer is local.
    assert.equal(value(series, 'lazysnap_remote_layers{background_fetch="done"}'), 3);
    const total = value(series, 'lazysnap_remote_layer_chunk_bytes');
    assert.ok(total > 0);
    assert.equal(value(series, 'lazysnap_remote_layer_cached_bytes'), total);
  });
});

describe('daemon logs', () => {
  it('JSON lines with level names; a layer that is downloaded says why', async () => {
    // The plain (gzip) image has no TOC digests: every layer is downloaded, each with its reason.
    const { stdout } = await lazysnapCli(['pull', '--address', containerd.socket, '--namespace', containerd.namespace, '--remote-snapshot', images.plainRef]);
    assert.match(stdout, /0 remote/);
    const lines = readFileSync(daemon.process.logPath, 'utf8').split('\n').filter((line) => line.startsWith('{'));
    const records = lines.map((line) => JSON.parse(line) as { level: unknown; msg: string; reason?: string; version?: string });
    for (const record of records) assert.ok(['trace', 'debug', 'info', 'warning', 'error', 'fatal'].includes(record.level as string), `level ${String(record.level)}`);
    const started = records.find((record) => record.msg === 'lazysnap snapshotter serving');
    const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(started?.version, version);
    const fallback = records.find((record) => record.msg === 'layer cannot be served remotely; it will be downloaded');
    assert.ok(fallback, 'no fallback line');
    assert.match(fallback.reason ?? '', /no TOC digest/);
  });
});

describe('registry errors in status', () => {
  it('a manifest the registry does not have is listed with its ref', async () => {
    const missing = `${registry.host}/lazysnap/missing:1`;
    const key = 'status-missing-image';
    // The layer falls back to an ordinary snapshot; the failure stays visible in the status.
    await daemon.client.prepare(key, '', { [REMOTE_SNAPSHOT_REF]: missing, [REMOTE_SNAPSHOT_DIGEST]: `sha256:${'0'.repeat(64)}` });
    await daemon.client.remove(key);
    const status = await statusJson();
    const failure = status.registryErrors.recent.find((error) => error.ref === missing);
    assert.ok(failure, `no registry error for ${missing}: ${JSON.stringify(status.registryErrors)}`);
    assert.equal(failure.kind, 'manifest');
    assert.ok(status.registryErrors.inWindow >= 1 && status.registryErrors.total >= 1);
    const { stdout } = await lazysnapCli(['status', '--address', daemon.socket, '--config', '/dev/null']);
    assert.match(stdout, /Registry errors in the last 10m: [1-9]/);
    assert.ok(stdout.includes(missing));
  });
});
