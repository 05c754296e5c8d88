// Start-up side by side with containerd/stargz-snapshotter: time from
// nothing on the node to a finished `ctr run` of a command reading a few
// files, for eStargz images made by stargz-snapshotter's converter, on
// loopback and behind a shaped link, in the same rounds with the mode order
// rotated every round. Modes:
//   full            ctr images pull + ctr run on containerd's overlayfs
//   stargz          ctr-remote images rpull + ctr run on stargz-snapshotter
//   lazysnap        lazysnap pull --remote-snapshot + ctr run on lazysnap
//   lazysnap-rpull  ctr-remote images rpull + ctr run on lazysnap (the same Go
//                   client as stargz: only the snapshotters differ)
// Every measurement starts from a fresh containerd root and cold lazysnap and
// stargz roots, both daemons running whatever the mode. Registry bytes are the
// blob bytes the registry logged as served from pull start to run end.
// Knobs: LAZYSNAP_BENCH_ROUNDS (3), LAZYSNAP_BENCH_IMAGES ("probe big"),
// LAZYSNAP_BENCH_LINKS ("loopback shaped"), LAZYSNAP_BENCH_MODES (all),
// STARGZ_BIN (containerd-stargz-grpc; without it the stargz mode is skipped).
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startDaemon } from '../harness/daemon.js';
import { lazysnapCli } from '../harness/lazysnap-cli.js';
import { makeTempDir, removeTree } from '../harness/process.js';
import { blobRequests } from '../harness/registry-log.js';
import { startRegistry } from '../harness/registry.js';
import { cleanUpOnAbort } from './abort-cleanup.js';
import { mountsUnder, unmountUnder } from './mounts-under.js';
import { removeShapedNetwork, startShapedRegistry, type ShapedRegistry } from './shaped-link.js';
import { findStargzBinary, startStargzDaemon, writeStargzConfig, type StargzBinary } from './stargz-daemon.js';
import { median, round, table } from './stats.js';
import { IMAGE_NAMES, buildThreeWayImage, checkHostFiles, type ImageName, type ThreeWayImage } from './three-way-images.js';

const execFileAsync = promisify(execFile);

const MODES = ['full', 'stargz', 'lazysnap', 'lazysnap-rpull'] as const;
type Mode = (typeof MODES)[number];
const LINKS = ['loopback', 'shaped'] as const;
type Link = (typeof LINKS)[number];

const SHAPED_RATE_MBIT = 100;
const SHAPED_RTT_MS = 20;
const PULL_TIMEOUT_MS = 1_800_000;
const MiB = 1024 * 1024;
const STARGZ_HINT = "set STARGZ_BIN=/path/to/containerd-stargz-grpc (stargz-snapshotter's daemon) to measure it";

interface Options {
  rounds: number;
  images: ImageName[];
  links: Link[];
  modes: Mode[];
  stargz: StargzBinary;
}

type Status = 'ok' | 'pull-failed' | 'run-failed' | 'bad-output' | 'fallback-full-get' | 'no-fuse-mounts';

export interface RoundRecord {
  image: ImageName;
  link: Link;
  mode: Mode;
  round: number;
  status: Status;
  error?: string;
  pullSeconds: number;
  runSeconds: number;
  totalSeconds: number;
  /** Blob bytes served during the pull. */
  pullBytes: number;
  /** Blob bytes served from pull start to run end. */
  registryBytes: number;
  /** GETs answered 200 for a whole layer blob: a lazy mode that falls back to downloading. */
  layerFullGets: number;
  rangeGets: number;
  /** FUSE mounts below the mode's snapshotter root right after the pull. */
  fuseMounts: number;
  /** warn/error lines the mode's snapshotter daemon logged during the measurement. */
  daemonWarnings: number;
}

export interface CellMedians {
  image: ImageName;
  link: Link;
  mode: Mode;
  okRounds: number;
  failedRounds: string[];
  pullSeconds: number;
  runSeconds: number;
  totalSeconds: number;
  registryMiB: number;
  /** Median over rounds of full's total / this mode's total in the same round. */
  fullOverMode?: number;
  /** Median over rounds of this mode's total / stargz's total in the same round. */
  modeOverStargz?: number;
  daemonWarnings: number;
}

interface RegistryEndpoint {
  link: Link;
  host: string;
  readLog(): string;
}

function listFromEnv<T extends string>(name: string, allowed: readonly T[], fallback: readonly T[]): T[] {
  const raw = process.env[name]?.trim();
  if (!raw) return [...fallback];
  const values = raw.split(/[\s,]+/).filter(Boolean);
  const unknown = values.filter((v) => !allowed.includes(v as T));
  if (unknown.length > 0) throw new Error(`${name}: unknown ${unknown.join(', ')}; known: ${allowed.join(', ')}`);
  return [...new Set(values)] as T[];
}

function readOptions(): Options {
  const rounds = Number(process.env.LAZYSNAP_BENCH_ROUNDS ?? 3);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`LAZYSNAP_BENCH_ROUNDS must be a positive integer, got ${process.env.LAZYSNAP_BENCH_ROUNDS}`);
  const stargz = findStargzBinary(process.env.STARGZ_BIN);
  const modes = listFromEnv('LAZYSNAP_BENCH_MODES', MODES, MODES).filter((m) => m !== 'stargz' || stargz.available);
  if (modes.length === 0) throw new Error('LAZYSNAP_BENCH_MODES leaves no mode to measure');
  return {
    rounds,
    images: listFromEnv('LAZYSNAP_BENCH_IMAGES', IMAGE_NAMES, IMAGE_NAMES),
    links: listFromEnv('LAZYSNAP_BENCH_LINKS', LINKS, LINKS),
    modes,
    stargz,
  };
}

/** The same modes every round, starting one further each round, so no mode always runs first (or right after another). */
export function rotatedModes(modes: readonly Mode[], roundNumber: number): Mode[] {
  const k = (roundNumber - 1) % modes.length;
  return [...modes.slice(k), ...modes.slice(0, k)];
}

function snapshotterOf(mode: Mode): 'stargz' | 'lazysnap' | undefined {
  if (mode === 'stargz') return 'stargz';
  return mode === 'full' ? undefined : 'lazysnap';
}

async function ctrRemote(containerd: ContainerdInstance, args: string[]): Promise<void> {
  try {
    await execFileAsync('ctr-remote', ['--address', containerd.socket, '--namespace', containerd.namespace, ...args], { timeout: PULL_TIMEOUT_MS, maxBuffer: 64 * MiB });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ctr-remote ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

async function pull(mode: Mode, containerd: ContainerdInstance, ref: string): Promise<void> {
  switch (mode) {
    case 'full':
      await containerd.ctr(['images', 'pull', '--plain-http', ref], { timeoutMs: PULL_TIMEOUT_MS });
      return;
    case 'stargz':
    case 'lazysnap-rpull':
      await ctrRemote(containerd, ['images', 'rpull', '--plain-http', '--snapshotter', snapshotterOf(mode) as string, ref]);
      return;
    case 'lazysnap':
      await lazysnapCli(['pull', '--remote-snapshot', '--plain-http', '--address', containerd.socket, '--namespace', containerd.namespace, '--snapshotter', 'lazysnap', ref], PULL_TIMEOUT_MS);
      return;
  }
}

/** After a failed `ctr run`: take the task and container down before containerd stops, so no shim outlives it. */
async function removeContainer(containerd: ContainerdInstance, id: string): Promise<void> {
  for (const args of [['tasks', 'kill', '--signal', 'SIGKILL', id], ['tasks', 'delete', '--force', id], ['containers', 'delete', id]]) {
    await containerd.ctr(args, { timeoutMs: 30_000 }).catch((err: Error) => console.error(`  cleanup: ${err.message.split('\n')[0]}`));
  }
}

const WARN_LINE = /"level":("(warning|error|fatal|panic)"|[456]0[,}])/;

function warningLines(logPath: string): string[] {
  return readFileSync(logPath, 'utf8').split('\n').filter((line) => WARN_LINE.test(line));
}

interface BlobTraffic {
  bytes: number;
  layerFullGets: number;
  rangeGets: number;
}

function blobTraffic(logSlice: string, layerDigests: string[]): BlobTraffic {
  const layers = new Set(layerDigests);
  const out = { bytes: 0, layerFullGets: 0, rangeGets: 0 };
  for (const r of blobRequests(logSlice)) {
    if (r.method !== 'GET') continue;
    if (r.status >= 200 && r.status < 300) out.bytes += r.bytes;
    if (r.status === 200 && layers.has(r.digest)) out.layerFullGets++;
    if (r.status === 206) out.rangeGets++;
  }
  return out;
}

interface Setup {
  workDir: string;
  stargz: StargzBinary;
  lazysnapConfig: string;
  stargzConfig: string;
}

async function measure(setup: Setup, endpoint: RegistryEndpoint, image: ThreeWayImage, mode: Mode, roundNumber: number): Promise<RoundRecord> {
  const dir = join(setup.workDir, 'm', `${endpoint.link}-${image.name}-${mode}-${roundNumber}`);
  mkdirSync(dir, { recursive: true });
  const ref = `${endpoint.host}/${image.repoTag}`;
  const snapshotter = snapshotterOf(mode);
  const containerId = `three-way-${roundNumber}-${process.pid}`;
  const record: RoundRecord = {
    image: image.name, link: endpoint.link, mode, round: roundNumber, status: 'ok',
    pullSeconds: NaN, runSeconds: NaN, totalSeconds: NaN, pullBytes: 0, registryBytes: 0, layerFullGets: 0, rangeGets: 0, fuseMounts: 0, daemonWarnings: 0,
  };
  const stops: Array<() => Promise<void>> = [];
  let daemonLog: string | undefined;
  try {
    const stargz = setup.stargz.available ? await startStargzDaemon(setup.stargz.path, join(dir, 'stargz'), setup.stargzConfig) : undefined;
    if (stargz) stops.push(stargz.stop);
    const lazysnap = await startDaemon(join(dir, 'lazysnap'), ['--config', setup.lazysnapConfig, '--log-level', 'info'], { fuseManager: true });
    stops.push(lazysnap.stopWithFuseManager);
    const stargzPlugin = stargz ? ['[proxy_plugins.stargz]', '  type = "snapshot"', `  address = "${stargz.socket}"`].join('\n') : undefined;
    const containerd = await startContainerd(dir, { lazysnapSocket: lazysnap.socket, extraConfig: stargzPlugin });
    stops.push(() => containerd.stop());
    const snapshotterRoot = snapshotter === 'stargz' ? stargz?.root : snapshotter === 'lazysnap' ? lazysnap.root : undefined;
    daemonLog = snapshotter === 'stargz' ? stargz?.process.logPath : snapshotter === 'lazysnap' ? lazysnap.process.logPath : undefined;

    const logStart = endpoint.readLog().length;
    const t0 = process.hrtime.bigint();
    let t1: bigint | undefined;
    let logAfterPull: number | undefined;
    try {
      await pull(mode, containerd, ref);
      t1 = process.hrtime.bigint();
      logAfterPull = endpoint.readLog().length;
      record.fuseMounts = snapshotterRoot ? mountsUnder(snapshotterRoot).filter((m) => m.fsType.startsWith('fuse')).length : 0;
      const args = ['run', '--rm', ...(snapshotter ? ['--snapshotter', snapshotter] : []), ref, containerId, '/bin/sh', '-c', image.command];
      let output: string;
      try {
        output = await containerd.ctr(args, { timeoutMs: PULL_TIMEOUT_MS });
      } catch (err) {
        record.status = 'run-failed';
        await removeContainer(containerd, containerId);
        throw err;
      }
      const missing = image.expectedOutput.filter((s) => !output.includes(s));
      if (missing.length > 0) {
        record.status = 'bad-output';
        record.error = `output lacks ${missing.join(', ')}: ${output.trim()}`;
      }
    } catch (err) {
      if (record.status === 'ok') record.status = 'pull-failed';
      record.error = (err as Error).message;
    }
    const t2 = process.hrtime.bigint();
    const log = endpoint.readLog();
    // A failed pull counts wholly as pull time and bytes.
    record.pullSeconds = Number((t1 ?? t2) - t0) / 1e9;
    record.runSeconds = Number(t2 - (t1 ?? t2)) / 1e9;
    record.totalSeconds = Number(t2 - t0) / 1e9;
    record.pullBytes = blobTraffic(log.slice(logStart, logAfterPull ?? log.length), image.layerDigests).bytes;
    const traffic = blobTraffic(log.slice(logStart), image.layerDigests);
    record.registryBytes = traffic.bytes;
    record.layerFullGets = traffic.layerFullGets;
    record.rangeGets = traffic.rangeGets;
    if (mode !== 'full' && record.status === 'ok' && record.layerFullGets > 0) record.status = 'fallback-full-get';
    if (mode !== 'full' && record.status === 'ok' && record.fuseMounts === 0) record.status = 'no-fuse-mounts';
  } finally {
    // containerd first (it holds the snapshotters' mounts), then the daemons.
    for (const stop of stops.reverse()) await stop();
    if (daemonLog) {
      const warnings = warningLines(daemonLog);
      record.daemonWarnings = warnings.length;
      for (const line of warnings.slice(0, 5)) console.error(`  ${snapshotter} daemon: ${line.slice(0, 400)}`);
    }
    unmountUnder(dir);
    removeTree(dir);
  }
  return record;
}

function describe(r: RoundRecord): string {
  return `round ${r.round} ${r.link} ${r.image} ${r.mode}: pull ${r.pullSeconds.toFixed(2)}s run ${r.runSeconds.toFixed(2)}s registry ${(r.registryBytes / MiB).toFixed(1)} MiB ` +
    `fuse=${r.fuseMounts} 200=${r.layerFullGets} 206=${r.rangeGets} warn/err=${r.daemonWarnings} ${r.status}${r.error ? `: ${r.error.slice(0, 600)}` : ''}`;
}

/** Median over rounds of total(numerator) / total(denominator), from rounds where both succeeded. */
function pairedRatio(records: RoundRecord[], image: ImageName, link: Link, numerator: Mode, denominator: Mode): number | undefined {
  const totals = (mode: Mode) => new Map(records.filter((r) => r.image === image && r.link === link && r.mode === mode && r.status === 'ok').map((r) => [r.round, r.totalSeconds]));
  const a = totals(numerator);
  const b = totals(denominator);
  const ratios = [...a].filter(([n]) => (b.get(n) ?? 0) > 0).map(([n, t]) => t / (b.get(n) as number));
  return ratios.length > 0 ? round(median(ratios), 2) : undefined;
}

export function cellMedians(records: RoundRecord[], options: Pick<Options, 'images' | 'links' | 'modes'>): CellMedians[] {
  const cells: CellMedians[] = [];
  for (const image of options.images) {
    for (const link of options.links) {
      for (const mode of options.modes) {
        const all = records.filter((r) => r.image === image && r.link === link && r.mode === mode);
        if (all.length === 0) continue;
        const ok = all.filter((r) => r.status === 'ok');
        const med = (f: (r: RoundRecord) => number) => median(ok.map(f));
        cells.push({
          image, link, mode,
          okRounds: ok.length,
          failedRounds: all.filter((r) => r.status !== 'ok').map((r) => `r${r.round}:${r.status}`),
          pullSeconds: round(med((r) => r.pullSeconds), 3),
          runSeconds: round(med((r) => r.runSeconds), 3),
          totalSeconds: round(med((r) => r.totalSeconds), 3),
          registryMiB: round(med((r) => r.registryBytes) / MiB, 1),
          fullOverMode: mode === 'full' ? undefined : pairedRatio(records, image, link, 'full', mode),
          modeOverStargz: mode === 'stargz' ? undefined : pairedRatio(records, image, link, mode, 'stargz'),
          daemonWarnings: all.reduce((n, r) => n + r.daemonWarnings, 0),
        });
      }
    }
  }
  return cells;
}

function ratioNames(modes: Mode[]): string {
  return [modes.includes('full') ? 'full/mode' : '', modes.includes('stargz') ? 'mode/stargz' : ''].filter(Boolean).join(' and ') || 'no ratio';
}

function ratioText(value: number | undefined): string {
  return value === undefined ? '' : `${value.toFixed(2)}x`;
}

/** One row per cell; a ratio column only when its reference mode was measured. */
function renderTable(cells: CellMedians[], modes: Mode[]): string {
  const withFull = modes.includes('full');
  const withStargz = modes.includes('stargz');
  const header = ['image', 'link', 'mode', 'pull s', 'run s', 'total s', 'registry MiB', ...(withFull ? ['full/mode'] : []), ...(withStargz ? ['mode/stargz'] : []), 'notes'];
  const rows = cells.map((c) => {
    const notes = [`n=${c.okRounds}`, c.daemonWarnings > 0 ? `warn/err=${c.daemonWarnings}` : '', c.failedRounds.length > 0 ? `failed ${c.failedRounds.join(' ')}` : ''].filter(Boolean).join(' ');
    const ok = c.okRounds > 0;
    const figures = ok ? [c.pullSeconds.toFixed(2), c.runSeconds.toFixed(2), c.totalSeconds.toFixed(2), c.registryMiB.toFixed(1)] : ['', '', '', ''];
    return [c.image, c.link, c.mode, ...figures, ...(withFull ? [ratioText(c.fullOverMode)] : []), ...(withStargz ? [ratioText(c.modeOverStargz)] : []), notes];
  });
  return table(header, rows);
}

function writeDaemonConfigs(setup: Setup, registryHosts: string[]): void {
  // Loopback is plain HTTP for lazysnap by default; listing every host keeps that true of any address the link uses.
  writeFileSync(setup.lazysnapConfig, ['[registry]', `insecure_hosts = [${registryHosts.map((h) => `"${h}"`).join(', ')}]`, ''].join('\n'));
  writeStargzConfig(setup.stargzConfig, registryHosts);
}

export interface ThreeWayResult {
  text: string;
  options: { rounds: number; images: ImageName[]; links: Link[]; modes: Mode[]; stargz: StargzBinary; shaped: string };
  images: ThreeWayImage[];
  rounds: RoundRecord[];
  medians: CellMedians[];
}

export async function benchThreeWay(): Promise<ThreeWayResult> {
  const options = readOptions();
  const stargzLine = options.stargz.available
    ? `stargz: ${options.stargz.version} (${options.stargz.path})`
    : `stargz column skipped: ${STARGZ_HINT} (${options.stargz.reason})`;
  console.error(stargzLine);
  checkHostFiles(options.images);
  const workDir = makeTempDir('bench-three-way');
  let shaped: ShapedRegistry | undefined;
  const disarm = cleanUpOnAbort(workDir, [removeShapedNetwork]);
  const registry = await startRegistry(workDir);
  try {
    const setup: Setup = { workDir, stargz: options.stargz, lazysnapConfig: join(workDir, 'lazysnap.toml'), stargzConfig: join(workDir, 'stargz.toml') };
    const images: ThreeWayImage[] = [];
    for (const name of options.images) {
      console.error(`building image ${name} and converting it to eStargz with ctr-remote`);
      images.push(await buildThreeWayImage(workDir, registry.host, name));
    }
    const records: RoundRecord[] = [];
    for (const link of options.links) {
      if (link === 'shaped') shaped = await startShapedRegistry(workDir, join(workDir, 'registry-storage'), SHAPED_RATE_MBIT, SHAPED_RTT_MS);
      const endpoint: RegistryEndpoint = shaped ? { link, host: shaped.host, readLog: shaped.readLog } : { link, host: registry.host, readLog: registry.readLog };
      writeDaemonConfigs(setup, [...new Set([registry.host, endpoint.host])]);
      try {
        for (let n = 1; n <= options.rounds; n++) {
          for (const image of images) {
            for (const mode of rotatedModes(options.modes, n)) {
              const record = await measure(setup, endpoint, image, mode, n);
              console.error(describe(record));
              records.push(record);
            }
          }
        }
      } finally {
        await shaped?.stop();
        shaped = undefined;
      }
    }
    const medians = cellMedians(records, options);
    const shapedText = `shaped = registry in its own network namespace, ${SHAPED_RATE_MBIT} Mbit/s each way (tbf), ${SHAPED_RTT_MS} ms RTT (delaying proxy)`;
    const text = [
      `Three-way start-up: nothing → finished \`ctr run\` reading a few files; ${options.rounds} round(s), mode order (${options.modes.join(' ')}) rotated every round; medians.`,
      `registry MiB = blob bytes served from pull start to run end; ${ratioNames(options.modes)} = median over rounds of the ratio of the two totals in the same round.`,
      ...images.map((i) => `image ${i.name}: ${i.layerDigests.length} layers, gzip ${(i.gzipBytes / MiB).toFixed(1)} MiB, eStargz ${(i.estargzBytes / MiB).toFixed(1)} MiB (ctr-remote), ${(i.uncompressedBytes / MiB).toFixed(1)} MiB unpacked`),
      ...(options.links.includes('shaped') ? [shapedText] : []),
      stargzLine,
      '',
      renderTable(medians, options.modes),
    ].join('\n');
    return {
      text,
      options: { rounds: options.rounds, images: options.images, links: options.links, modes: options.modes, stargz: options.stargz, shaped: shapedText },
      images,
      rounds: records,
      medians,
    };
  } finally {
    await shaped?.stop();
    await registry.stop();
    unmountUnder(workDir);
    removeTree(workDir);
    disarm();
  }
}
