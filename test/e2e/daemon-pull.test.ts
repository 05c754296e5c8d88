// `lazysnap pull --remote-snapshot` handed to the running daemon, end to end
// with real containerd, registry and runc: the CLI finds the daemon by the
// admin socket it advertised (the daemon checks with containerd that it is the
// snapshotter named) or else through containerd (the proxy plugin's exported
// address), the daemon pulls, the
// CLI prints what it would have printed itself, and containers read the
// right bytes. Also: --no-daemon, a failure told in the same words either
// way, and the fallback when the daemon cannot be asked.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readlinkSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../harness/daemon.js';
import { startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';
import { assertChecksums, checksumCommand, pushTestImages, type TestImages } from '../harness/estargz-image.js';
import { lazysnapCli, lazysnapCliOutcome } from '../harness/lazysnap-cli.js';
import { makeTempDir, removeTree, waitUntil } from '../harness/process.js';
import { adminDirectory, advertisedAdminSockets } from '../../src/admin/admin-directory.js';
import { adminSocketPath } from '../../src/admin/admin-server.js';
import { lookupSnapshotterPlugin } from '../../src/containerd/proxy-plugin.js';

let work: string;
let registry: RegistryInstance;
let daemon: DaemonInstance;
let containerd: ContainerdInstance;
let images: TestImages;

before(async () => {
  work = makeTempDir('e2e-daemon-pull');
  registry = await startRegistry(work);
  images = await pushTestImages(work, registry.host, 'daemon-pull');
  daemon = await startDaemon(join(work, 'lazysnap'));
  containerd = await startContainerd(work, { lazysnapSocket: daemon.socket });
});

after(async () => {
  await containerd?.stop();
  await daemon?.stop();
  await registry?.stop();
  removeTree(work);
});

/** The daemon's log lines that record pulls handed over to it, by ref. */
function handedOver(ref: string): number {
  return readFileSync(daemon.process.logPath, 'utf8')
    .split('\n')
    .filter((line) => line.includes('"pull handed over by lazysnap pull"') && line.includes(`"ref":${JSON.stringify(ref)}`)).length;
}

/** Where an advertised link points; undefined once it is gone (daemons of other tests come and go). */
function linkTarget(link: string): string | undefined {
  try {
    return readlinkSync(link);
  } catch {
    return undefined;
  }
}

async function readsRightBytes(ns: string, name: string): Promise<void> {
  const out = await containerd.ctr(['--namespace', ns, 'run', '--rm', '--snapshotter', 'lazysnap', images.estargzRef, name, ...checksumCommand(images.expected)]);
  assert.deepEqual(assertChecksums(out, images.expected), []);
}

function pullArgs(ns: string, ...extra: string[]): string[] {
  return ['pull', '--address', containerd.socket, '--namespace', ns, '--remote-snapshot', ...extra];
}

describe('a pull handed to the daemon', () => {
  it("containerd names the daemon's socket as the proxy plugin's address", async () => {
    const plugin = await lookupSnapshotterPlugin(containerd.socket, containerd.namespace, 'lazysnap');
    assert.equal(plugin?.address, daemon.socket);
    assert.equal(plugin?.failed, false);
    assert.equal(await lookupSnapshotterPlugin(containerd.socket, containerd.namespace, 'no-such-snapshotter'), undefined);
  });

  it('is run by the daemon: same summary and progress as a pull in the CLI, and the container reads the right bytes', async () => {
    const before = handedOver(images.estargzRef);
    const { stdout, stderr } = await lazysnapCli(pullArgs('handed', images.estargzRef));
    assert.match(stdout, new RegExp(`^${images.estargzRef.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: sha256:[0-9a-f]{64} \\(3 layers: 3 remote, 0 downloaded, 0 already present; 0\\.0 MiB in [0-9.]+ s\\)\\n$`));
    assert.equal((stderr.match(/^layer [0-9a-f]{12}: remote$/gm) ?? []).length, 3, `progress lines on stderr:\n${stderr}`);
    assert.equal(handedOver(images.estargzRef), before + 1, 'the daemon logged the pull');
    await readsRightBytes('handed', 'read-handed');
  });

  it('with --no-daemon, the CLI pulls by itself', async () => {
    const before = handedOver(images.estargzRef);
    const { stdout } = await lazysnapCli(pullArgs('here', '--no-daemon', images.estargzRef));
    assert.match(stdout, /3 layers: 3 remote, 0 downloaded/);
    assert.equal(handedOver(images.estargzRef), before, 'the daemon was not asked');
    await readsRightBytes('here', 'read-here');
  });

  it('a failure reads the same whoever pulled, and fails the command', async () => {
    const missing = `${registry.host}/lazysnap/daemon-pull:no-such-tag`;
    const handed = await lazysnapCliOutcome(pullArgs('fail', missing));
    const here = await lazysnapCliOutcome(pullArgs('fail', '--no-daemon', missing));
    assert.equal(handed.code, 1);
    assert.equal(here.code, 1);
    assert.match(handed.stderr, /no-such-tag/);
    assert.equal(handed.stderr, here.stderr);
    assert.equal(handedOver(missing), 1, 'only the first was handed over');
  });

  it('finds the daemon by its advertised socket; a daemon that is not the snapshotter named refuses and the next one is asked', async () => {
    // A second daemon that containerd does not know, advertised after the first, so the CLI asks it first.
    const other = await startDaemon(join(work, 'other'));
    try {
      const otherAdmin = adminSocketPath(other.socket);
      await waitUntil('the other daemon advertises its admin socket', async () => {
        return (await advertisedAdminSockets(adminDirectory())).some((link) => linkTarget(link) === otherAdmin);
      });
      const before = handedOver(images.estargzRef);
      const { stdout, stderr } = await lazysnapCli(pullArgs('advertised', '--log-level', 'debug', images.estargzRef));
      assert.match(stdout, /3 layers: 3 remote, 0 downloaded/);
      assert.match(stderr, new RegExp(`snapshotter lazysnap of containerd at \\S+ is served at ${daemon.socket.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, not by this daemon`), `the other daemon refused:\n${stderr}`);
      assert.doesNotMatch(stderr, /pulling in this process/);
      assert.equal(handedOver(images.estargzRef), before + 1, 'the daemon containerd names ran the pull');
      assert.ok(!readFileSync(other.process.logPath, 'utf8').includes('"pull handed over by lazysnap pull"'), 'the other daemon ran no pull');
      await readsRightBytes('advertised', 'read-advertised');
    } finally {
      await other.stop();
    }
    const otherAdmin = adminSocketPath(other.socket);
    assert.ok(!(await advertisedAdminSockets(adminDirectory())).some((link) => linkTarget(link) === otherAdmin), 'a stopped daemon withdraws its link');
  });

  it('falls back to pulling in the CLI when the daemon cannot be asked (no admin socket)', async () => {
    const admin = adminSocketPath(daemon.socket);
    const aside = `${admin}.aside`;
    renameSync(admin, aside);
    try {
      const before = handedOver(images.estargzRef);
      const { stdout, stderr } = await lazysnapCli(pullArgs('fallback', '--log-level', 'info', images.estargzRef));
      assert.match(stdout, /3 layers: 3 remote, 0 downloaded/);
      assert.match(stderr, /cannot take the pull: no daemon answers there; pulling in this process/);
      assert.equal(handedOver(images.estargzRef), before);
      await readsRightBytes('fallback', 'read-fallback');
    } finally {
      renameSync(aside, admin);
    }
  });
});
