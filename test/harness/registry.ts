// A real distribution registry (Debian's docker-registry) on 127.0.0.1 with
// its storage in a temp dir. Its request log is kept so tests can check what
// was fetched.
import { writeFileSync, readFileSync, mkdirSync } from 'node:fs';
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

export async function startRegistry(workDir: string, port?: number): Promise<RegistryInstance> {
  const listenPort = port ?? (await freePort());
  const storage = join(workDir, 'registry-storage');
  mkdirSync(storage, { recursive: true });
  const configPath = join(workDir, 'registry-config.yml');
  writeFileSync(
    configPath,
    [
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
      '',
    ].join('\n'),
  );
  const logPath = join(workDir, 'registry.log');
  const host = `127.0.0.1:${listenPort}`;
  const url = `http://${host}`;
  const launch = async (): Promise<ManagedProcess> => {
    const proc = new ManagedProcess('docker-registry', ['serve', configPath], logPath);
    await waitUntil(`registry at ${url}`, async () => {
      if (!proc.running) throw new Error(`docker-registry exited; see ${logPath}`);
      const res = await fetch(`${url}/v2/`);
      await res.arrayBuffer();
      return res.status === 200;
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
