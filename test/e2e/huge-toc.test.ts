// An image whose layers carry TOCs of hundreds of thousands of entries, pulled
// lazily through the real daemon, containerd and registry: the daemon stays
// within its configured TOC memory (peak RSS, parses included), the layers
// that fit are served lazily, the one past the budget is downloaded instead
// (never a crash), and the container sees every layer's files.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ESTARGZ_FOOTER_SIZE, extractTocJson, openEstargz } from '../../src/estargz/index.js';
import { FsTree, tocParseMemory } from '../../src/layer/index.js';
import { startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startDaemon, type DaemonInstance } from '../harness/daemon.js';
import { storeEstargzLayer } from '../harness/estargz-layer.js';
import { pushImage, writeManifest } from '../harness/image.js';
import { lazysnapCli } from '../harness/lazysnap-cli.js';
import { makeTempDir, removeTree } from '../harness/process.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';
import { buildBlob, type FileSpec } from '../unit/layer/fixtures.js';

/** Entries per big layer: a TOC of about 25 MB of JSON, enough to show, small enough for a 2-core machine. */
const ENTRIES = 200_000;
const BIG_LAYERS = 3;
const MiB = 2 ** 20;

let work: string;
let registry: RegistryInstance;
let daemon: DaemonInstance;
let containerd: ContainerdInstance;
let ref: string;
let budgetMiB: number;

function manyFiles(layer: number): FileSpec[] {
  const files: FileSpec[] = [{ name: `hello-${layer}.txt`, data: Buffer.from(`hello from big layer ${layer}\n`) }];
  for (let i = 0; files.length < ENTRIES; i++) files.push({ name: `big${layer}/d${Math.floor(i / 1000)}/f${i}`, data: Buffer.alloc(0) });
  return files;
}

/** Peak resident memory of a process (VmHWM), in bytes. */
function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, 'VmHWM not found');
  return Number(m[1]) * 1024;
}

before(async () => {
  work = makeTempDir('huge-toc');
  registry = await startRegistry(work);
  const layoutDir = join(work, 'oci');
  mkdirSync(join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  const busybox = readFileSync('/bin/busybox');
  const base = await buildBlob([
    { name: 'bin', type: 'directory', mode: 0o755 },
    { name: 'bin/busybox', data: busybox, mode: 0o755 },
    { name: 'bin/sh', type: 'symlink', linkname: 'busybox' },
    { name: 'bin/cat', type: 'symlink', linkname: 'busybox' },
  ]);
  const layers = [storeEstargzLayer(layoutDir, base.blob, base.result.tocDigest)];
  let retained = 0;
  let parse = 0;
  for (let i = 0; i < BIG_LAYERS; i++) {
    const { blob, result } = await buildBlob(manyFiles(i));
    const index = await openEstargz(blob);
    retained = Math.max(retained, index.estimatedBytes + FsTree.fromIndex(index).estimatedBytes);
    const { json } = await extractTocJson(blob.subarray(result.tocOffset, blob.length - ESTARGZ_FOOTER_SIZE), 256 * MiB);
    parse = Math.max(parse, tocParseMemory(json));
    layers.push(storeEstargzLayer(layoutDir, blob, result.tocDigest));
  }
  // Room for the small base layer, two big layers kept and one big parse under way, but not for a third big layer's parse.
  budgetMiB = Math.ceil((retained + parse) / MiB) + 4;
  assert.ok(2 * retained + parse > budgetMiB * MiB, `the budget (${budgetMiB} MiB) must not hold a third big layer`);
  ref = pushImage(writeManifest(layoutDir, 'v1', layers), registry.host, 'lazy/huge-toc:v1');
  const config = join(work, 'lazysnap.toml');
  writeFileSync(config, `[remote]\ntoc_memory_mib = ${budgetMiB}\nmemory_cache_mib = 16\nbackground_fetch = false\n`);
  daemon = await startDaemon(join(work, 'lazysnap'), ['--config', config, '--log-level', 'info']);
  containerd = await startContainerd(work, { lazysnapSocket: daemon.socket });
});

after(async () => {
  await containerd?.stop();
  await daemon?.stop();
  await registry?.stop();
  removeTree(work);
});

describe('layers with huge TOCs', () => {
  it('serves what fits in the TOC memory budget, downloads the rest, and stays within it', async () => {
    const pid = daemon.process.child.pid!;
    const idle = peakRss(pid);
    const { stdout } = await lazysnapCli(['pull', '--address', containerd.socket, '--namespace', containerd.namespace, '--remote-snapshot', ref]);
    // Base and two big layers fit; the third big one does not and is downloaded (and so is nothing above it).
    assert.match(stdout, /4 layers: 3 remote, 1 downloaded/);
    const out = await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', ref, 'huge-toc', '/bin/cat', '/hello-0.txt', '/hello-1.txt', '/hello-2.txt']);
    assert.equal(out, 'hello from big layer 0\nhello from big layer 1\nhello from big layer 2\n');
    const grown = peakRss(pid) - idle;
    console.log(`TOC budget ${budgetMiB} MiB: daemon peak RSS ${(idle / MiB).toFixed(0)} MiB idle, +${(grown / MiB).toFixed(0)} MiB for the pull`);
    // The budget, the 16 MiB chunk cache, and 384 MiB for what V8 lets garbage grow to before it collects
    // and what the allocator keeps committed (RSS is not live memory). Measured: +340-410 MiB here; the
    // code before the budget and the compact index took +848 MiB for the same pull.
    assert.ok(grown < (budgetMiB + 16 + 384) * MiB, `peak RSS grew by ${(grown / MiB).toFixed(0)} MiB with a ${budgetMiB} MiB TOC budget`);
    const log = readFileSync(daemon.process.logPath, 'utf8');
    assert.match(log, /TOC needs about [\d.]+ MiB of memory/, 'the refusal is logged with its reason');
    assert.ok(daemon.process.running, 'the daemon is still running');
  });
});
