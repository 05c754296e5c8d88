// A WAN-like path to a registry for benchmarks: the registry runs in its
// own network namespace behind a veth pair limited by tbf on both ends,
// and a user-space proxy on 127.0.0.1 adds latency (this kernel has no
// netem). Only addresses inside the pair are used.
import { execFileSync } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManagedProcess, freePort, waitUntil } from '../harness/process.js';

const NS = 'lazysnap-bench';
const HOST_IF = 'lzsb0';
const NS_IF = 'lzsb1';
const HOST_ADDR = '10.231.77.1';
const NS_ADDR = '10.231.77.2';

export interface ShapedRegistry {
  /** host:port on 127.0.0.1 that reaches the shaped registry. */
  host: string;
  bytesServed(): number;
  /** The registry's access log so far (see test/harness/registry-log.ts). */
  readLog(): string;
  stop(): Promise<void>;
}

function sh(args: string[]): void {
  execFileSync(args[0] as string, args.slice(1), { stdio: 'pipe' });
}

export function removeShapedNetwork(): void {
  try {
    sh(['ip', 'netns', 'del', NS]);
  } catch {
    // not there
  }
  try {
    sh(['ip', 'link', 'del', HOST_IF]);
  } catch {
    // removed with the namespace
  }
}

/** Starts docker-registry on storageDir inside the namespace, rate-limited to rateMbit, with rttMs of latency. */
export async function startShapedRegistry(workDir: string, storageDir: string, rateMbit: number, rttMs: number): Promise<ShapedRegistry> {
  removeShapedNetwork();
  sh(['ip', 'netns', 'add', NS]);
  sh(['ip', 'link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF]);
  sh(['ip', 'link', 'set', NS_IF, 'netns', NS]);
  sh(['ip', 'addr', 'add', `${HOST_ADDR}/30`, 'dev', HOST_IF]);
  sh(['ip', 'link', 'set', HOST_IF, 'up']);
  sh(['ip', 'netns', 'exec', NS, 'ip', 'addr', 'add', `${NS_ADDR}/30`, 'dev', NS_IF]);
  sh(['ip', 'netns', 'exec', NS, 'ip', 'link', 'set', NS_IF, 'up']);
  sh(['ip', 'netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
  const tbf = ['root', 'tbf', 'rate', `${rateMbit}mbit`, 'burst', '64kb', 'latency', '100ms'];
  sh(['tc', 'qdisc', 'add', 'dev', HOST_IF, ...tbf]);
  sh(['ip', 'netns', 'exec', NS, 'tc', 'qdisc', 'add', 'dev', NS_IF, ...tbf]);

  const config = join(workDir, 'shaped-registry.yml');
  writeFileSync(config, ['version: 0.1', 'log:', '  level: warn', '  accesslog:', '    disabled: false', 'storage:', '  filesystem:', `    rootdirectory: ${storageDir}`, 'http:', `  addr: ${NS_ADDR}:5000`, ''].join('\n'));
  const logPath = join(workDir, 'shaped-registry.log');
  const registry = new ManagedProcess('ip', ['netns', 'exec', NS, 'docker-registry', 'serve', config], logPath);
  const port = await freePort();
  let served = 0;
  const proxy = await startDelayProxy(port, NS_ADDR, 5000, rttMs / 2, (n) => {
    served += n;
  });
  const host = `127.0.0.1:${port}`;
  await waitUntil('shaped registry', async () => {
    if (!registry.running) throw new Error('shaped docker-registry exited');
    const res = await fetch(`http://${host}/v2/`);
    await res.arrayBuffer();
    return res.status === 200;
  }, 30_000, 200);
  return {
    host,
    bytesServed: () => served,
    readLog: () => readFileSync(logPath, 'utf8'),
    stop: async () => {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      await registry.stop();
      removeShapedNetwork();
    },
  };
}

/** A TCP proxy that delays every chunk by delayMs in each direction (so RTT grows by 2 × delayMs). */
function startDelayProxy(port: number, targetHost: string, targetPort: number, delayMs: number, countDown: (bytes: number) => void): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    const forward = (from: Socket, to: Socket, count: boolean) => {
      from.on('data', (chunk: Buffer) => {
        if (count) countDown(chunk.length);
        // Equal delays keep order: Node fires timers of the same duration in creation order.
        setTimeout(() => {
          if (!to.destroyed) to.write(chunk);
        }, delayMs);
      });
      from.on('end', () => setTimeout(() => to.end(), delayMs));
      from.on('error', () => to.destroy());
      from.on('close', () => sockets.delete(from));
    };
    forward(client, upstream, false);
    forward(upstream, client, true);
  });
  const close = server.close.bind(server);
  server.close = ((cb?: (err?: Error) => void) => {
    for (const s of sockets) s.destroy();
    return close(cb);
  }) as typeof server.close;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}
