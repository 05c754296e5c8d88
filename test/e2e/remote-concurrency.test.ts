// 20 concurrent `lazysnap pull --remote-snapshot` of one eStargz image:
// all succeed and each layer's footer and TOC are fetched once. (How long
// they take next to one pull is a benchmark figure: npm run bench.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../harness/daemon.js';
import { startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';
import { blobRequests } from '../harness/registry-log.js';
import { pushTestImages, type TestImages } from '../harness/estargz-image.js';
import { lazysnapCli } from '../harness/lazysnap-cli.js';
import { freePort, makeTempDir, removeTree } from '../harness/process.js';
import { RegistryClient } from '../../src/registry/index.js';

let work: string;
let registry: RegistryInstance;
let daemon: DaemonInstance;
let containerd: ContainerdInstance;
let images: TestImages;
let metricsUrl: string;

before(async () => {
  work = makeTempDir('e2e-concurrent');
  registry = await startRegistry(work);
  images = await pushTestImages(work, registry.host, 'concurrent');
  // Only the fetches that opening a layer needs: no prefetch or background fetch to blur the count.
  const config = join(work, 'lazysnap.toml');
  writeFileSync(config, '[remote]\nprefetch = false\nbackground_fetch = false\n');
  const port = await freePort();
  metricsUrl = `http://127.0.0.1:${port}/metrics`;
  daemon = await startDaemon(join(work, 'lazysnap'), ['--config', config, '--metrics-address', `127.0.0.1:${port}`]);
  containerd = await startContainerd(work, { lazysnapSocket: daemon.socket });
});

after(async () => {
  await containerd?.stop();
  await daemon?.stop();
  await registry?.stop();
  removeTree(work);
});

const pull = (ns: string) => lazysnapCli(['pull', '--quiet', '--address', containerd.socket, '--namespace', ns, '--remote-snapshot', images.estargzRef]);

describe('concurrent remote pulls', () => {
  it('20 pulls of one image at once succeed and open each layer once', async () => {
    const client = new RegistryClient();
    const layers = (await client.resolve(images.estargzRef)).manifest.layers.map((l) => l.digest);
    await client.close();

    const results = await Promise.allSettled(Array.from({ length: 20 }, () => pull('many')));
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.deepEqual(failures.map((f) => String(f.reason)), []);
    for (const r of results) assert.match((r as PromiseFulfilledResult<{ stdout: string }>).value.stdout, /3 layers: (\d) remote, 0 downloaded/);

    const metrics = await (await fetch(metricsUrl)).text();
    const opens = Number(/lazysnap_remote_layer_opens_total\{outcome="ok"\} (\d+)/.exec(metrics)?.[1] ?? NaN);
    assert.equal(opens, layers.length, `each layer must be opened (footer + TOC verified) once, got ${opens} opens for ${layers.length} layers`);
    await new Promise((r) => setTimeout(r, 1500));
    const gets = blobRequests(registry.readLog()).filter((r) => r.method === 'GET' && layers.includes(r.digest));
    assert.ok(gets.length <= layers.length * 2, `${gets.length} range requests for ${layers.length} layers over 20 pulls`);
    // Every pull ended with the same three committed layers, not twenty copies.
    const committed = (await daemon.client.list(['kind==committed'])).length;
    assert.equal(committed, layers.length);
    assert.equal((await daemon.client.list(['kind==active'])).length, 0, 'losing Prepares must not leave active snapshots behind');
  });
});
