// Snapshots API throughput and latency through containerd's own API:
// lazysnap (proxy plugin) and containerd's builtin overlayfs side by side in
// one run, with 1 and 16 concurrent clients, plus lazysnap's metadata-lock
// hold time from its metrics.
import { join } from 'node:path';
import { SnapshotsClient } from '../../src/containerd/snapshots-client.js';
import { startContainerd } from '../harness/containerd.js';
import { startDaemon } from '../harness/daemon.js';
import { freePort, makeTempDir, removeTree } from '../harness/process.js';
import { round, summarize, table, type LatencySummary } from './stats.js';

const SNAPSHOTTERS = ['overlayfs', 'lazysnap'] as const;
const CONCURRENCY = [1, 16];
const OPS = Number(process.env.LAZYSNAP_BENCH_OPS ?? 600);
/** Without a lease, containerd's garbage collector would remove our snapshots mid-run; a root label pins them. */
const PIN = { 'containerd.io/gc.root': new Date().toISOString() };

interface Row {
  operation: string;
  snapshotter: string;
  clients: number;
  result: LatencySummary;
}

async function runClients(clients: number, ops: number, op: (i: number) => Promise<void>): Promise<LatencySummary> {
  const latencies: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = next++; i < ops; i = next++) {
        const t = performance.now();
        await op(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  return summarize(latencies, (performance.now() - start) / 1000);
}

async function lockHold(metricsUrl: string): Promise<Record<string, number>> {
  const text = await (await fetch(metricsUrl)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^lazysnap_metadata_lock_hold_quantile_seconds\{quantile="([0-9.]+)",operation="all"\} (\S+)/.exec(line);
    if (m) out[m[1] as string] = Number(m[2]);
    const c = /^lazysnap_metadata_lock_hold_quantile_seconds_count\{operation="all"\} (\S+)/.exec(line);
    if (c) out.count = Number(c[1]);
  }
  return out;
}

export async function benchSnapshotter(): Promise<{ rows: Row[]; lockHold: Record<string, number>; text: string }> {
  const work = makeTempDir('bench-snap');
  const metricsPort = await freePort();
  const daemon = await startDaemon(join(work, 'lazysnap'), ['--metrics-address', `127.0.0.1:${metricsPort}`, '--log-level', 'warn'], { fuseManager: true });
  const containerd = await startContainerd(work, { lazysnapSocket: daemon.socket });
  const rows: Row[] = [];
  try {
    const clients = Object.fromEntries(
      SNAPSHOTTERS.map((s) => [s, new SnapshotsClient({ address: containerd.socket, snapshotter: s, namespace: 'bench' })]),
    ) as Record<(typeof SNAPSHOTTERS)[number], SnapshotsClient>;
    for (const concurrency of CONCURRENCY) {
      // Interleave the two snapshotters per scenario so machine noise hits both alike.
      for (const s of SNAPSHOTTERS) {
        const c = clients[s];
        const tag = `${s}-c${concurrency}`;
        rows.push({ operation: 'Prepare+Commit', snapshotter: s, clients: concurrency, result: await runClients(concurrency, OPS, async (i) => {
          await c.prepare(`${tag}-a${i}`, '', PIN);
          await c.commit(`${tag}-c${i}`, `${tag}-a${i}`, PIN);
        }) });
      }
      for (const s of SNAPSHOTTERS) {
        const c = clients[s];
        const tag = `${s}-c${concurrency}`;
        rows.push({ operation: 'Stat', snapshotter: s, clients: concurrency, result: await runClients(concurrency, OPS * 2, async (i) => {
          await c.stat(`${tag}-c${i % OPS}`);
        }) });
      }
      for (const s of SNAPSHOTTERS) {
        const c = clients[s];
        const tag = `${s}-c${concurrency}`;
        for (let i = 0; i < 20; i++) await c.prepare(`${tag}-m${i}`, `${tag}-c${i}`, PIN);
        rows.push({ operation: 'Mounts', snapshotter: s, clients: concurrency, result: await runClients(concurrency, OPS * 2, async (i) => {
          await c.mounts(`${tag}-m${i % 20}`);
        }) });
      }
    }
    for (const c of Object.values(clients)) c.close();
    const hold = await lockHold(`http://127.0.0.1:${metricsPort}/metrics`);
    const byKey = new Map(rows.map((r) => [`${r.operation}|${r.snapshotter}|${r.clients}`, r.result]));
    const tableRows = rows
      .filter((r) => r.snapshotter === 'lazysnap')
      .map((r) => {
        const base = byKey.get(`${r.operation}|overlayfs|${r.clients}`)!;
        return [r.operation, r.clients, base.opsPerSecond, r.result.opsPerSecond, round(r.result.opsPerSecond / base.opsPerSecond, 2), base.p50Ms, r.result.p50Ms, base.p99Ms, r.result.p99Ms];
      });
    const text = [
      `Snapshots API through containerd (${OPS} ops per row; ratio = lazysnap / overlayfs throughput)`,
      table(['operation', 'clients', 'overlayfs ops/s', 'lazysnap ops/s', 'ratio', 'overlayfs p50 ms', 'lazysnap p50 ms', 'overlayfs p99 ms', 'lazysnap p99 ms'], tableRows),
      '',
      `lazysnap metadata-lock hold over ${hold.count ?? 0} write transactions: p50 ${fmtUs(hold['0.5'])}  p99 ${fmtUs(hold['0.99'])}  max ${fmtUs(hold['1'])}`,
    ].join('\n');
    return { rows, lockHold: hold, text };
  } finally {
    await containerd.stop();
    await daemon.stopWithFuseManager();
    removeTree(work);
  }
}

function fmtUs(seconds: number | undefined): string {
  return seconds === undefined ? 'n/a' : `${round(seconds * 1e6, 1)} µs`;
}
