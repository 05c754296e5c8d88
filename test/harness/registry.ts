// A real distribution registry (Debian's docker-registry) on 127.0.0.1 with
// its storage in a temp dir. Its request log is kept so tests can check what
// was fetched. Options make it serve TLS (optionally requiring client
// certificates), share another registry's storage, or act as a pull-through
// cache of another registry (a mirror), or require Basic auth.
import { writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ManagedProcess, freePort, waitUntil } from './process.js';

export interface RegistryInstance {
  /** host:port, e.g. 127.0.0.1:40123 */
  host: string;
  url: string;
  process: ManagedProcess;
  /** The registry's log so far (one JSON-ish line per request). */
  readLog(): string;
  stop(): Promise<void>;
  /** Start it again on the same port and storage after stop(). */
  restart(): Promise<void>;
}

export interface RegistryOptions {
  port?: number;
  /** Serve HTTPS with this certificate and key; with clientCa, require client certificates signed by it. */
  tls?: { cert: string; key: string; clientCa?: string };
  /** Storage directory; default `registry-storage` in the work dir (pass another registry's to serve its images). */
  storage?: string;
  /** Run as a pull-through cache of this registry URL. */
  proxyRemoteUrl?: string;
  /** Require Basic auth against this htpasswd file (bcrypt lines, as `htpasswd -B` writes them). */
  htpasswd?: string;
  /** File names in the work dir, so several registries can share one. */
  name?: string;
}

export async function startRegistry(workDir: string, portOrOptions?: number | RegistryOptions): Promise<RegistryInstance> {
  const options: RegistryOptions = typeof portOrOptions === 'number' ? { port: portOrOptions } : (portOrOptions ?? {});
  const name = options.name ?? 'registry';
  const listenPort = options.port ?? (await freePort());
  const storage = options.storage ?? join(workDir, `${name}-storage`);
  mkdirSync(storage, { recursive: true });
  const configPath = join(workDir, `${name}-config.yml`);
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storage}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${listenPort}`,
  ];
  if (options.tls) {
    lines.push('  tls:', `    certificate: ${options.tls.cert}`, `    key: ${options.tls.key}`);
    if (options.tls.clientCa) lines.push('    clientcas:', `      - ${options.tls.clientCa}`);
  }
  if (options.proxyRemoteUrl) lines.push('proxy:', `  remoteurl: ${options.proxyRemoteUrl}`);
  if (options.htpasswd) lines.push('auth:', '  htpasswd:', '    realm: lazysnap-test', `    path: ${options.htpasswd}`);
  writeFileSync(configPath, `${lines.join('\n')}\n`);
  const logPath = join(workDir, `${name}.log`);
  const host = `127.0.0.1:${listenPort}`;
  const url = `${options.tls ? 'https' : 'http'}://${host}`;
  const launch = async (): Promise<ManagedProcess> => {
    const proc = new ManagedProcess('docker-registry', ['serve', configPath], logPath);
    await waitUntil(`registry at ${url}`, async () => {
      if (!proc.running) throw new Error(`docker-registry exited; see ${logPath}`);
      if (options.tls) return listening(listenPort);
      const res = await fetch(`${url}/v2/`);
      await res.arrayBuffer();
      return res.status === (options.htpasswd ? 401 : 200);
    });
    return proc;
  };
  const instance: RegistryInstance = {
    host,
    url,
    process: await launch(),
    readLog: () => readFileSync(logPath, 'utf8'),
    stop: async () => instance.process.stop(),
    restart: async () => {
      instance.process = await launch();
    },
  };
  return instance;
}

/** A TLS registry cannot be asked over plain HTTP; an accepted connection is its sign of life. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
