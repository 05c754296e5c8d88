// examples/containerd-config.toml as an operator merges it into containerd
// 1.6's config: it must parse (`containerd config dump`), and a containerd
// started from it (paths moved to a temp dir, CRI plugin on as on a node)
// must reach lazysnap through the proxy plugin it declares.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'smol-toml';
import { DEFAULT_CONFIG } from '../../src/config/index.js';
import { startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startDaemon, type DaemonInstance } from '../harness/daemon.js';
import { makeTempDir, removeTree } from '../harness/process.js';

const execFileAsync = promisify(execFile);
const EXAMPLE = new URL('../../../examples/containerd-config.toml', import.meta.url);

let work: string;
let daemon: DaemonInstance;
let containerd: ContainerdInstance;
let exampleText: string;

type Table = Record<string, unknown>;
const table = (value: unknown, name: string): Table => {
  assert.equal(typeof value, 'object', `${name} is not a table`);
  return value as Table;
};

before(async () => {
  work = makeTempDir('e2e-deploy-containerd');
  exampleText = readFileSync(EXAMPLE, 'utf8');
  daemon = await startDaemon(join(work, 'lazysnap'));
  // The harness writes root, state and sockets; the example brings the rest, with lazysnap's paths moved.
  const body = exampleText
    .replace(/^version = 2$/m, '')
    .replaceAll(DEFAULT_CONFIG.address, daemon.socket)
    .replaceAll(DEFAULT_CONFIG.root, daemon.root);
  containerd = await startContainerd(work, { extraConfig: body, enableCri: true });
});

after(async () => {
  await containerd?.stop();
  await daemon?.stop();
  removeTree(work);
});

describe('examples/containerd-config.toml on containerd 1.6', () => {
  it("names lazysnap's default socket and root, so it works with a default `lazysnap serve`", () => {
    const proxy = table(table(table(parse(exampleText)['proxy_plugins'], 'proxy_plugins')['lazysnap'], 'proxy_plugins.lazysnap'), 'lazysnap');
    assert.equal(proxy['type'], 'snapshot');
    assert.equal(proxy['address'], DEFAULT_CONFIG.address);
    assert.equal(table(proxy['exports'], 'proxy_plugins.lazysnap.exports')['root'], DEFAULT_CONFIG.root);
  });

  it('parses with `containerd config dump`, with the proxy plugin and the CRI settings in effect', async () => {
    const { stdout } = await execFileAsync('containerd', ['--config', join(work, 'containerd', 'config.toml'), 'config', 'dump']);
    const dump = parse(stdout);
    const proxy = table(table(dump['proxy_plugins'], 'proxy_plugins')['lazysnap'], 'proxy_plugins.lazysnap');
    assert.deepEqual({ type: proxy['type'], address: proxy['address'] }, { type: 'snapshot', address: daemon.socket });
    const cri = table(table(table(dump['plugins'], 'plugins')['io.containerd.grpc.v1.cri'], 'cri')['containerd'], 'cri.containerd');
    assert.equal(cri['snapshotter'], 'lazysnap');
    assert.equal(cri['disable_snapshot_annotations'], false);
  });

  it('lists lazysnap as a snapshotter plugin (1.6 shows only the address among its exports)', async () => {
    const detail = await containerd.ctr(['plugins', 'ls', '-d', 'id==lazysnap']);
    assert.match(detail, /Type:\s+io\.containerd\.snapshotter\.v1\n/);
    assert.match(detail, new RegExp(`address\\s+${daemon.socket.replaceAll('.', '\\.')}\\n`));
    const status = (await containerd.ctr(['plugins', 'ls', 'id==lazysnap'])).trim().split('\n').slice(1);
    assert.equal(status.length, 1);
    assert.match(status[0]!, /\bok\s*$/);
  });

  it('serves the Snapshots API through lazysnap', async () => {
    await containerd.ctr(['snapshots', '--snapshotter', 'lazysnap', 'prepare', 'deploy-check', '']);
    const names = (await containerd.ctr(['snapshots', '--snapshotter', 'lazysnap', 'ls'])).trim().split('\n').slice(1);
    assert.ok(names.some((line) => line.startsWith('deploy-check ')), names.join('\n'));
    const stored = await daemon.client.list([]);
    assert.ok(stored.some((info) => info.name.endsWith('/deploy-check')), JSON.stringify(stored.map((s) => s.name)));
    await containerd.ctr(['snapshots', '--snapshotter', 'lazysnap', 'rm', 'deploy-check']);
  });
});
