// The FUSE mounts of lazy layers live in the FUSE manager, not in the daemon:
// a container reads cached and uncached files in a loop while the daemon is
// stopped and started (SIGTERM), killed (SIGKILL), replaced by another build,
// and frozen (SIGSTOP, a daemon whose loop never turns). Not one read may
// fail, the mounts must be the same kernel mounts (adopted, not remade), and
// the restarted daemon must still list, serve and remove the snapshots. Then
// the answer bound (a registry that stops answering gives EIO in time), and
// the manager's own death: the daemon starts a new one and mounts every
// layer again, so new containers work. Real containerd, runc and registry.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DaemonStatus } from '../../src/admin/index.js';
import { startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { CLI_PATH, startDaemon, type DaemonInstance } from '../harness/daemon.js';
import { assertChecksums, checksumCommand, pushTestImages, type TestImages } from '../harness/estargz-image.js';
import { lazysnapCli } from '../harness/lazysnap-cli.js';
import { freePort, makeTempDir, removeTree, waitUntil } from '../harness/process.js';
import { parsePrometheusText } from '../harness/prometheus.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';

/** The bound given to every FUSE answer in this test ([remote] fuse_answer_timeout_seconds). */
const ANSWER_TIMEOUT_S = 3;

let work: string;
let registry: RegistryInstance;
let daemon: DaemonInstance;
let containerd: ContainerdInstance;
let images: TestImages;
let daemonArgs: string[];
let metricsUrl: string;
let readsLog: string;
let snapshotsBefore: string[];

before(async () => {
  work = makeTempDir('e2e-fuse-manager');
  registry = await startRegistry(work);
  images = await pushTestImages(work, registry.host, 'manager');
  const config = join(work, 'lazysnap.toml');
  // No background fetch: files the reader has not read yet stay uncached, so its reads keep reaching the registry.
  writeFileSync(config, `[remote]\nbackground_fetch = false\nfetch_timeout_seconds = 60\nfuse_answer_timeout_seconds = ${ANSWER_TIMEOUT_S}\n`);
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  daemonArgs = ['--config', config, '--metrics-address', `127.0.0.1:${port}`];
  daemon = await startDaemon(join(work, 'lazysnap'), daemonArgs, { fuseManager: true });
  containerd = await startContainerd(work, { lazysnapSocket: daemon.socket });
  const { stdout } = await lazysnapCli(['pull', '--address', containerd.socket, '--namespace', containerd.namespace, '--remote-snapshot', images.estargzRef]);
  assert.match(stdout, /3 layers: 3 remote, 0 downloaded/);
});

after(async () => {
  await containerd?.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'reader']).catch(() => undefined);
  await containerd?.ctr(['containers', 'rm', 'reader']).catch(() => undefined);
  await containerd?.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'survivor']).catch(() => undefined);
  await containerd?.ctr(['containers', 'rm', 'survivor']).catch(() => undefined);
  await containerd?.stop();
  // The manager outlives the daemon by design: stop it too (it unmounts every layer).
  await daemon?.stopWithFuseManager();
  await registry?.stop();
  removeTree(work);
});

async function statusJson(): Promise<DaemonStatus> {
  const { stdout } = await lazysnapCli(['status', '--address', daemon.socket, '--config', '/dev/null', '--json']);
  return JSON.parse(stdout) as DaemonStatus;
}

/** Mountpoints of the layer mounts in mountinfo (a dead mount would stay listed until it is taken down). */
function layerMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line.includes(daemon.root) && line.includes(' - fuse'))
    .map((line) => line.split(' ')[4] as string)
    .sort();
}

/** Layers the FUSE manager mounted so far, all its instances together (they share one log file); its start-up warm-up's made-up layer is not one. */
function mountsMadeByManagers(): number {
  const log = join(daemon.root, 'fuse-manager', 'manager.log');
  return readFileSync(log, 'utf8').split('\n').filter((line) => line.includes('"msg":"layer mounted"') && !line.includes('"warmUp":true')).length;
}

/** Layers opened (footer and TOC fetched and verified) by the current manager, from the daemon's /metrics. */
async function layersOpened(): Promise<number> {
  const series = parsePrometheusText(await (await fetch(metricsUrl)).text());
  return series.get('lazysnap_remote_layer_opens_total{outcome="ok"}') ?? 0;
}

/** The daemon is back: the same mounts, none made again, no layer opened again (no registry round trip for them). */
async function assertAdopted(mounts: string[], what: string): Promise<void> {
  assert.deepEqual(layerMounts(), mounts, what);
  assert.equal(mountsMadeByManagers(), 3, `${what}: no layer mounted again`);
  assert.equal(await layersOpened(), 3, `${what}: no layer opened again`);
  assert.deepEqual(await snapshotNames(), snapshotsBefore, `${what}: the same snapshots`);
}

interface ReadTally {
  ok: number;
  failures: string[];
}

function tally(): ReadTally {
  const lines = existsSync(readsLog) ? readFileSync(readsLog, 'utf8').split('\n') : [];
  return { ok: lines.filter((l) => l.startsWith('ok ')).length, failures: lines.filter((l) => l.startsWith('FAIL')) };
}

/** Waits until the reader has done `more` further rounds (each: a cached file and a file never read before). */
async function readerProgresses(more: number, what: string): Promise<void> {
  const start = tally().ok;
  await waitUntil(`${more} more reads ${what}`, () => tally().ok >= start + more, 60_000, 100);
  assert.deepEqual(tally().failures, [], `failed reads ${what}`);
}

async function snapshotNames(): Promise<string[]> {
  return (await daemon.client.list()).map((info) => info.name).sort();
}

function copyOfTheBuild(): string {
  // Another directory, the same code: what an upgrade looks like to the kernel and to the manager.
  const distRoot = dirname(dirname(dirname(CLI_PATH)));
  const projectRoot = dirname(distRoot);
  const copy = join(work, 'other-build');
  mkdirSync(copy);
  cpSync(distRoot, join(copy, 'dist'), { recursive: true });
  cpSync(join(projectRoot, 'package.json'), join(copy, 'package.json'));
  cpSync(join(projectRoot, 'proto'), join(copy, 'proto'), { recursive: true });
  symlinkSync(join(projectRoot, 'node_modules'), join(copy, 'node_modules'));
  return join(copy, 'dist', 'src', 'cli', 'main.js');
}

describe('FUSE manager', () => {
  it('keeps a running container reading through daemon SIGTERM, SIGKILL, an upgrade to another build and a frozen daemon', async () => {
    const outDir = join(work, 'reader-out');
    mkdirSync(outDir);
    readsLog = join(outDir, 'reads.log');
    // Each round: a small cached file (read every time), then one Python module never read before (fetched from the registry).
    const script = [
      'i=0',
      'while true; do',
      '  for f in $(find /usr/lib/python3.11 -name "*.py"); do',
      '    cat /etc/lower/kept.txt > /dev/null 2>&1 || echo "FAIL cached round $i" >> /out/reads.log',
      '    cat "$f" > /dev/null 2>&1 || echo "FAIL uncached $f round $i" >> /out/reads.log',
      '    echo "ok $i" >> /out/reads.log',
      '    i=$((i+1))',
      '    sleep 0.05',
      '  done',
      'done',
    ].join('\n');
    await containerd.ctr(['run', '-d', '--snapshotter', 'lazysnap', '--mount', `type=bind,src=${outDir},dst=/out,options=rbind:rw`, images.estargzRef, 'reader', '/bin/sh', '-c', script]);
    await readerProgresses(20, 'before any restart');
    const mounts = layerMounts();
    assert.equal(mounts.length, 3, 'one FUSE mount per layer');
    snapshotsBefore = await snapshotNames();
    assert.equal(await layersOpened(), 3);
    assert.equal(mountsMadeByManagers(), 3);
    const managerPid = (await statusJson()).fuseManager?.pid;
    assert.ok(managerPid !== undefined && managerPid !== daemon.process.child.pid, 'a FUSE manager of its own serves the mounts');

    await daemon.stop();
    await readerProgresses(10, 'while no daemon runs (after SIGTERM)');
    daemon = await startDaemon(join(work, 'lazysnap'), daemonArgs, { fuseManager: true });
    await readerProgresses(10, 'after SIGTERM and a start');
    await assertAdopted(mounts, 'after SIGTERM and a start');

    await daemon.kill();
    await readerProgresses(10, 'while no daemon runs (after SIGKILL)');
    daemon = await startDaemon(join(work, 'lazysnap'), daemonArgs, { fuseManager: true });
    await readerProgresses(10, 'after SIGKILL and a start');
    await assertAdopted(mounts, 'after SIGKILL and a start');

    await daemon.stop();
    daemon = await startDaemon(join(work, 'lazysnap'), daemonArgs, { fuseManager: true, cliPath: copyOfTheBuild() });
    await readerProgresses(10, 'after an upgrade to another build');
    await assertAdopted(mounts, 'after an upgrade to another build');

    // A daemon whose event loop does not turn at all: the worst a slow List or a huge TOC parse could do.
    process.kill(daemon.process.child.pid as number, 'SIGSTOP');
    try {
      await readerProgresses(20, 'while the daemon is frozen (SIGSTOP)');
    } finally {
      process.kill(daemon.process.child.pid as number, 'SIGCONT');
    }

    const status = await statusJson();
    assert.equal(status.fuseManager?.pid, managerPid, 'one manager throughout');
    assert.equal(status.fuseManager?.restarts, 0);
    assert.equal(status.fuseManager?.connected, true);
    assert.equal(status.fuseManager?.mounts, 3);
    assert.equal(status.mounts.length, 3);

    // New containers from the same image start after all that.
    await containerd.reachesLazysnap();
    const out = await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', images.estargzRef, 'after-upgrade', ...checksumCommand(images.expected)]);
    assert.deepEqual(assertChecksums(out, images.expected), []);
    assert.deepEqual(tally().failures, []);
    assert.ok(tally().ok >= 90, `the reader kept reading: ${tally().ok} rounds`);
  });

  it('answers a read the registry does not serve with EIO within the bound, and counts it', async () => {
    const status = await statusJson();
    // The Python/zoneinfo layer is the largest; its zoneinfo files were never read.
    const big = [...status.remote.layers].sort((a, b) => (b.size ?? 0) - (a.size ?? 0))[0];
    assert.ok(big?.mountpoint, 'the large layer is mounted');
    await containerd.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'reader']).catch(() => undefined);
    const registryPid = registry.process.child.pid as number;
    process.kill(registryPid, 'SIGSTOP');
    let elapsedMs: number;
    let code: number | null;
    try {
      const started = performance.now();
      code = await new Promise<number | null>((resolve) => {
        const cat = spawn('cat', [join(big.mountpoint as string, 'usr', 'share', 'zoneinfo', 'Europe', 'Paris')], { stdio: 'ignore' });
        cat.on('exit', (exit) => resolve(exit));
      });
      elapsedMs = performance.now() - started;
    } finally {
      process.kill(registryPid, 'SIGCONT');
    }
    assert.notEqual(code, 0, 'the read failed');
    assert.ok(elapsedMs >= ANSWER_TIMEOUT_S * 1000 - 200 && elapsedMs < ANSWER_TIMEOUT_S * 1000 + 5_000, `answered after ${Math.round(elapsedMs)} ms (bound ${ANSWER_TIMEOUT_S} s)`);
    const series = parsePrometheusText(await (await fetch(metricsUrl)).text());
    assert.ok((series.get('lazysnap_fuse_answer_timeouts_total{operation="read"}') ?? 0) >= 1, 'the manager counts the answer given at the deadline, and the daemon serves its metrics');
    assert.equal(series.get('lazysnap_fuse_manager_connected'), 1);
  });

  it('starts a new manager when the manager dies, mounts every layer again, and new containers work', async () => {
    await containerd.ctr(['containers', 'rm', 'reader']).catch(() => undefined);
    await containerd.ctr(['run', '-d', '--snapshotter', 'lazysnap', images.estargzRef, 'survivor', '/bin/sleep', '600']);
    assert.equal((await containerd.ctr(['tasks', 'exec', '--exec-id', 'before', 'survivor', '/bin/cat', '/etc/lower/kept.txt'])).trim(), 'kept-from-layer-0');
    const before = await statusJson();
    const oldPid = before.fuseManager?.pid as number;
    const oldMounts = layerMounts();
    process.kill(oldPid, 'SIGKILL');
    await waitUntil('a new FUSE manager with the layers mounted again', async () => {
      const status = await statusJson();
      return status.fuseManager?.connected === true && status.fuseManager.pid !== oldPid && status.fuseManager.mounts === 3 && status.fuseManager.restarts === 1;
    }, 60_000, 250);
    // The dead mounts were taken down, not stacked under the new ones.
    assert.deepEqual(layerMounts(), oldMounts, 'one mount per layer, at the same places');
    assert.equal(mountsMadeByManagers(), 6, 'the new manager mounted every layer again');
    for (const mountpoint of oldMounts) assert.ok(existsSync(join(mountpoint, 'bin')) || existsSync(join(mountpoint, 'usr')) || existsSync(join(mountpoint, 'opt')), `${mountpoint} serves its layer`);
    // As the README says: a container that ran on the dead manager's mounts cannot open their files any more.
    await assert.rejects(containerd.ctr(['tasks', 'exec', '--exec-id', 'after', 'survivor', '/bin/cat', '/etc/lower/kept.txt']));
    await containerd.ctr(['tasks', 'kill', '-s', 'SIGKILL', 'survivor']);
    await waitUntil('the survivor to stop and its task to be deleted', async () => {
      await containerd.ctr(['tasks', 'rm', 'survivor']);
      return true;
    }, 20_000, 200);
    await containerd.ctr(['containers', 'rm', 'survivor']);
    const out = await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', images.estargzRef, 'after-manager-death', ...checksumCommand(images.expected)]);
    assert.deepEqual(assertChecksums(out, images.expected), []);
    const series = parsePrometheusText(await (await fetch(metricsUrl)).text());
    assert.equal(series.get('lazysnap_fuse_manager_restarts_total'), 1);
  });

  it('still unmounts a layer when containerd removes its snapshots', async () => {
    await containerd.ctr(['images', 'rm', '--sync', images.estargzRef]);
    await waitUntil('every layer unmounted after the image is gone', () => layerMounts().length === 0, 30_000, 250);
    assert.deepEqual(await snapshotNames(), []);
  });
});
