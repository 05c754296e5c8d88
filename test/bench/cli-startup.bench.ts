// How soon the CLI does something: `lazysnap --help` from spawn to exit, and
// `lazysnap pull` from spawn to its first gRPC request to containerd, each
// the median of ROUNDS runs. Side by side in the same run: a bare `node -e 0`
// (the floor any Node CLI pays) and `ctr version` (containerd's Go client) to
// its first request. The "containerd" here is an HTTP/2 server on a unix
// socket that notes when the first request arrives and answers UNAVAILABLE,
// so nothing but start-up is measured.
import { spawn } from 'node:child_process';
import { createServer, constants as http2 } from 'node:http2';
import { join } from 'node:path';
import { CLI_PATH } from '../harness/daemon.js';
import { makeTempDir, removeTree } from '../harness/process.js';
import { percentile, round, table } from './stats.js';

const ROUNDS = Number(process.env.LAZYSNAP_BENCH_CLI_ROUNDS ?? 10);

interface Row {
  what: string;
  medianMs: number;
  p90Ms: number;
  /** Median over the floor's median (node -e 0), where it applies. */
  overNodeFloor?: number;
}

function runToExit(command: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(command, args, { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', () => resolve(performance.now() - t0));
  });
}

/** Spawns the command and resolves the time until the fake containerd sees its first request. */
async function timeToFirstCall(socket: string, command: string, args: string[]): Promise<number> {
  let t0 = 0;
  let firstCall: ((ms: number) => void) | undefined;
  const called = new Promise<number>((resolve) => (firstCall = resolve));
  const server = createServer();
  server.on('stream', (stream) => {
    firstCall?.(performance.now() - t0);
    firstCall = undefined;
    stream.respond({ [http2.HTTP2_HEADER_STATUS]: 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'benchmark' }, { endStream: true });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  try {
    t0 = performance.now();
    const child = spawn(command, args, { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const ms = await Promise.race([called, exited.then(() => Promise.reject(new Error(`${command} ${args.join(' ')} exited before calling containerd`)))]);
    await exited;
    return ms;
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function measure(what: string, run: () => Promise<number>): Promise<{ what: string; samples: number[] }> {
  await run(); // one unmeasured run: the page cache holds the files afterwards, as on a node that uses the CLI
  const samples: number[] = [];
  for (let i = 0; i < ROUNDS; i++) samples.push(await run());
  return { what, samples: samples.sort((a, b) => a - b) };
}

export async function benchCliStartup(): Promise<{ rows: Row[]; text: string }> {
  const work = makeTempDir('bench-cli');
  const socket = join(work, 'containerd.sock');
  try {
    const node = process.execPath;
    const results = [
      await measure('node -e 0 (floor)', () => runToExit(node, ['-e', '0'])),
      await measure('lazysnap --help', () => runToExit(node, [CLI_PATH, '--help'])),
      await measure('lazysnap pull: first containerd call', () =>
        timeToFirstCall(socket, node, [CLI_PATH, 'pull', '--quiet', '--config', '/dev/null', '--address', socket, '127.0.0.1:1/none:latest'])),
      await measure('ctr version: first containerd call', () => timeToFirstCall(socket, 'ctr', ['-a', socket, 'version'])),
    ];
    const floor = percentile(results[0]!.samples, 50);
    const rows: Row[] = results.map(({ what, samples }) => {
      const median = percentile(samples, 50);
      return { what, medianMs: round(median, 1), p90Ms: round(percentile(samples, 90), 1), ...(what.startsWith('lazysnap') ? { overNodeFloor: round(median / floor, 2) } : {}) };
    });
    const text = [
      `CLI start-up, ${ROUNDS} runs each (after one unmeasured run), milliseconds`,
      table(['what', 'median', 'p90', 'x node floor'], rows.map((r) => [r.what, r.medianMs, r.p90Ms, r.overNodeFloor ?? ''])),
    ].join('\n');
    return { rows, text };
  } finally {
    removeTree(work);
  }
}
