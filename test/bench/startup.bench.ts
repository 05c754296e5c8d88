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
import pino from 'pino';
import { ContainerdConnection } from '../../src/containerd/connection.js';
import { createProgress, pullImage } from '../../src/pull/index.js';
import { SingleFlight } from '../../src/sync/index.js';
import { round, table } from './stats.js';

const BIG_FILES = Number(process.env.LAZYSNAP_BENCH_BIG_FILES ?? 3);
const SKIP_SHAPED = process.env.LAZYSNAP_BENCH_SKIP_SHAPED === '1';
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
  const daemon = await startDaemon(join(dir, 'lazysnap'), ['--log-level', 'warn'], { fuseManager: true });
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
    await daemon.stopWithFuseManager();
    removeTree(dir);
  }
}

/** count `ctr images pull` (containerd's own client, overlayfs) at once: the reference for the figures above. */
async function ctrPulls(work: string, ref: string, count: number): Promise<number> {
  const dir = join(work, `ctr-${count}`);
  mkdirSync(dir, { recursive: true });
  const containerd = await startContainerd(dir);
  try {
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: count }, () => containerd.ctr(['images', 'pull', '--plain-http', ref], { timeoutMs: 1_800_000 })));
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    await containerd.stop();
    removeTree(dir);
  }
}

/** count pulls at once inside this one process, sharing a registry client and one flight per layer. */
async function inProcessPulls(work: string, ref: string, count: number): Promise<number> {
  const dir = join(work, `in-process-${count}`);
  mkdirSync(dir, { recursive: true });
  const daemon = await startDaemon(join(dir, 'lazysnap'), ['--log-level', 'warn'], { fuseManager: true });
  const containerd = await startContainerd(dir, { lazysnapSocket: daemon.socket });
  const registry = new RegistryClient();
  const flights = new SingleFlight<number>();
  const remoteFlights = new SingleFlight<'remote' | 'exists' | 'download' | 'missing'>();
  const logger = pino({ level: 'silent' });
  try {
    const t0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: count }, async () => {
        // One connection per pull: the lease travels on the connection.
        const connection = new ContainerdConnection({ address: containerd.socket, namespace: containerd.namespace });
        try {
          await pullImage({ ref, remoteSnapshot: true, snapshotter: 'lazysnap' }, { registry, connection, progress: createProgress(process.stderr, true), logger, flights, remoteFlights });
        } finally {
          connection.close();
        }
      }),
    );
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    await registry.close();
    await containerd.stop();
    await daemon.stopWithFuseManager();
    removeTree(dir);
  }
}

async function concurrentPulls(work: string, ref: string, count: number): Promise<number> {
  const dir = join(work, `concurrent-${count}`);
  mkdirSync(dir, { recursive: true });
  const daemon = await startDaemon(join(dir, 'lazysnap'), ['--log-level', 'warn'], { fuseManager: true });
  const containerd = await startContainerd(dir, { lazysnapSocket: daemon.socket });
  try {
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: count }, () => lazysnapCli(['pull', '--quiet', '--address', containerd.socket, '--namespace', containerd.namespace, '--remote-snapshot', ref])));
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    await containerd.stop();
    await daemon.stopWithFuseManager();
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
    const shaped = SKIP_SHAPED ? undefined : await startShapedRegistry(work, join(work, 'registry-storage'), 100, 20);
    if (shaped) try {
      const ref = `${shaped.host}/bench/big:esgz`;
      for (const method of ['overlayfs', 'lazysnap'] as const) {
        trials.push({ network: '100 Mbit/s, 20 ms RTT', method, ...(await trial(work, `shaped-${method}`, ref, method, shaped.bytesServed)) });
      }
    } finally {
      await shaped.stop();
    }


    const one = await concurrentPulls(work, esgzLoopback, 1);
    const twenty = await concurrentPulls(work, esgzLoopback, 20);
    const oneInProcess = await inProcessPulls(work, esgzLoopback, 1);
    const twentyInProcess = await inProcessPulls(work, esgzLoopback, 20);
    const ctrOne = await ctrPulls(work, esgzLoopback, 1);
    const ctrTwenty = await ctrPulls(work, esgzLoopback, 20);

    const rows = ['loopback', '100 Mbit/s, 20 ms RTT'].filter((n) => trials.some((t) => t.network === n)).map((network) => {
      const a = trials.find((t) => t.network === network && t.method === 'overlayfs')!;
      const b = trials.find((t) => t.network === network && t.method === 'lazysnap')!;
      return [network, round(a.seconds, 2), round(b.seconds, 2), round(a.seconds / b.seconds, 1), round(a.bytesFetched / 1048576, 1), round(b.bytesFetched / 1048576, 2)];
    });
    const text = [
      `Start-up: nothing → finished \`ctr run\` reading 3 files; eStargz image of ${imageMiB} MiB (4 layers)`,
      table(['network', 'ctr pull + overlayfs s', 'lazysnap lazy pull s', 'speed-up', 'overlayfs MiB fetched', 'lazysnap MiB fetched'], rows),
      '',
      'Concurrent lazy pulls of the image on loopback (fresh containerd and daemon each time):',
      table(['pulls', '1 pull s', '20 at once s', 'ratio'], [
        ['in one process (pullImage, shared flights)', round(oneInProcess, 2), round(twentyInProcess, 2), round(twentyInProcess / oneInProcess, 1)],
        ['20 `lazysnap pull` processes', round(one, 2), round(twenty, 2), round(twenty / one, 1)],
        ['reference: 20 `ctr images pull` processes (overlayfs, full download)', round(ctrOne, 2), round(ctrTwenty, 2), round(ctrTwenty / ctrOne, 1)],
      ]),
    ].join('\n');
    return { text, trials, imageMiB, concurrent: { one, twenty, oneInProcess, twentyInProcess, ctrOne, ctrTwenty } };
  } finally {
    await registry.stop();
    removeTree(work);
  }
}
