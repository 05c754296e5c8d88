// Time from nothing to a finished `ctr run` of a command that reads a few
// files, for an eStargz image of 300+ MB: containerd's own pull onto
// overlayfs vs lazysnap's lazy pull, side by side, on loopback and behind a
// shaped link (100 Mbit/s, 20 ms RTT). Also bytes fetched from the registry,
// and 20 concurrent lazy pulls vs one.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage, buildTestImageTree, pushImage } from '../harness/image.js';
import { lazysnapCli } from '../harness/lazysnap-cli.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';
import { bytesServed } from '../harness/registry-log.js';
import { startDaemon } from '../harness/daemon.js';
import { startContainerd } from '../harness/containerd.js';
import { makeTempDir, removeTree } from '../harness/process.js';
import { RegistryClient } from '../../src/registry/index.js';
import { startShapedRegistry } from './shaped-link.js';
import { round, table } from './stats.js';

const BIG_FILES = Number(process.env.LAZYSNAP_BENCH_BIG_FILES ?? 3);
const BIG_FILE_MIB = 100;
const RUN_COMMAND = ['/bin/sh', '-c', 'cat /etc/lower/kept.txt; sha256sum /usr/lib/python3.11/os.py; head -c 65536 /big/file-0.bin | wc -c'];

interface Trial {
  network: string;
  method: 'overlayfs' | 'lazysnap';
  seconds: number;
  bytesFetched: number;
}

async function trial(work: string, name: string, ref: string, method: Trial['method'], bytes: () => number): Promise<{ seconds: number; bytesFetched: number }> {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const daemon = await startDaemon(join(dir, 'lazysnap'), ['--log-level', 'warn']);
  const containerd = await startContainerd(dir, { lazysnapSocket: daemon.socket });
  try {
    const before = bytes();
    const t0 = process.hrtime.bigint();
    if (method === 'overlayfs') {
      await containerd.ctr(['images', 'pull', '--plain-http', ref], { timeoutMs: 1_800_000 });
      await containerd.ctr(['run', '--rm', ref, 'bench', ...RUN_COMMAND]);
    } else {
      await lazysnapCli(['pull', '--quiet', '--address', containerd.socket, '--namespace', containerd.namespace, '--remote-snapshot', ref]);
      await containerd.ctr(['run', '--rm', '--snapshotter', 'lazysnap', ref, 'bench', ...RUN_COMMAND]);
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await new Promise((r) => setTimeout(r, 1200));
    return { seconds, bytesFetched: bytes() - before };
  } finally {
    await containerd.ctr(['images', 'rm', '--sync', ref]).catch(() => undefined);
    await containerd.stop();
    await daemon.stop();
    removeTree(dir);
  }
}

async function concurrentPulls(work: string, ref: string, count: number): Promise<number> {
  const dir = join(work, `concurrent-${count}`);
  mkdirSync(dir, { recursive: true });
  const daemon = await startDaemon(join(dir, 'lazysnap'), ['--log-level', 'warn']);
  const containerd = await startContainerd(dir, { lazysnapSocket: daemon.socket });
  try {
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: count }, () => lazysnapCli(['pull', '--quiet', '--address', containerd.socket, '--namespace', containerd.namespace, '--remote-snapshot', ref])));
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    await containerd.stop();
    await daemon.stop();
    removeTree(dir);
  }
}

export async function benchStartup(): Promise<{ text: string; trials: Trial[]; imageMiB: number; concurrent: Record<string, number> }> {
  const work = makeTempDir('bench-startup');
  const registry: RegistryInstance = await startRegistry(work);
  try {
    const trees = buildTestImageTree(join(work, 'tree'));
    const big = join(work, 'layer-bigfiles');
    mkdirSync(join(big, 'big'), { recursive: true });
    for (let i = 0; i < BIG_FILES; i++) {
      execFileSync('/bin/sh', ['-c', `head -c ${BIG_FILE_MIB * 1024 * 1024} /dev/urandom > ${join(big, 'big', `file-${i}.bin`)}`]);
    }
    const image = buildImage(join(work, 'oci'), 'v1', [trees[0]!, { dir: big }, trees[1]!, trees[2]!]);
    const plainRef = pushImage(image, registry.host, 'bench/big:plain');
    const esgzLoopback = `${registry.host}/bench/big:esgz`;
    await lazysnapCli(['convert', '--compression-level', '1', plainRef, esgzLoopback]);
    const client = new RegistryClient();
    const layers = (await client.resolve(esgzLoopback)).manifest.layers;
    await client.close();
    const imageMiB = round(layers.reduce((n, l) => n + l.size, 0) / 1048576, 1);

    const trials: Trial[] = [];
    const loopbackBytes = () => [...bytesServed(registry.readLog()).values()].reduce((a, b) => a + b, 0);
    for (const method of ['overlayfs', 'lazysnap'] as const) {
      trials.push({ network: 'loopback', method, ...(await trial(work, `loop-${method}`, esgzLoopback, method, loopbackBytes)) });
    }
    const shaped = await startShapedRegistry(work, join(work, 'registry-storage'), 100, 20);
    try {
      const ref = `${shaped.host}/bench/big:esgz`;
      for (const method of ['overlayfs', 'lazysnap'] as const) {
        trials.push({ network: '100 Mbit/s, 20 ms RTT', method, ...(await trial(work, `shaped-${method}`, ref, method, shaped.bytesServed)) });
      }
    } finally {
      await shaped.stop();
    }

    const one = await concurrentPulls(work, esgzLoopback, 1);
    const twenty = await concurrentPulls(work, esgzLoopback, 20);

    const rows = ['loopback', '100 Mbit/s, 20 ms RTT'].map((network) => {
      const a = trials.find((t) => t.network === network && t.method === 'overlayfs')!;
      const b = trials.find((t) => t.network === network && t.method === 'lazysnap')!;
      return [network, round(a.seconds, 2), round(b.seconds, 2), round(a.seconds / b.seconds, 1), round(a.bytesFetched / 1048576, 1), round(b.bytesFetched / 1048576, 2)];
    });
    const text = [
      `Start-up: nothing → finished \`ctr run\` reading 3 files; eStargz image of ${imageMiB} MiB (4 layers)`,
      table(['network', 'ctr pull + overlayfs s', 'lazysnap lazy pull s', 'speed-up', 'overlayfs MiB fetched', 'lazysnap MiB fetched'], rows),
      '',
      `lazysnap pull --remote-snapshot on loopback: 1 pull ${round(one, 2)} s, 20 concurrent pulls ${round(twenty, 2)} s (ratio ${round(twenty / one, 1)}; each pull is its own CLI process)`,
    ].join('\n');
    return { text, trials, imageMiB, concurrent: { one, twenty } };
  } finally {
    await registry.stop();
    removeTree(work);
  }
}
