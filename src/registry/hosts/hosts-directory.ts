// Finds and reads the host configuration of a registry in a containerd-style
// hosts directory (`[registry] config_path`, `ctr --hosts-dir`): the
// directory named after the registry (`HOST_PORT_` first, then `HOST:PORT`,
// as containerd looks them up), else `_default`. In it, `hosts.toml`; without
// one, Docker's certificate files (`*.crt` CAs, `*.cert` + `*.key` client
// pairs), as containerd falls back to.
//
// Directories are re-read after RELOAD_MS, so an operator's edit takes effect
// without a restart, as it does for containerd, without a file read per chunk.
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HostsConfigError } from '../errors.js';
import { ALL_CAPABILITIES, HostsFileSyntaxError, parseHostsFile, type HostSpec } from './hosts-file.js';

export const RELOAD_MS = 5_000;

/** A registry's configuration as found on disk. */
export interface HostDirectoryConfig {
  /** The file (hosts.toml) or directory (certificate files) it came from. */
  source: string;
  hosts: HostSpec[];
  ignoredKeys: string[];
}

/** Directories searched for a registry host, most specific first (containerd's order). */
export function hostDirectoryCandidates(root: string, registryHost: string): string[] {
  const out: string[] = [];
  const colon = registryHost.lastIndexOf(':');
  // `[::1]` has colons inside brackets; only a port after the bracket counts.
  if (colon > 0 && colon > registryHost.lastIndexOf(']')) {
    out.push(join(root, `${registryHost.slice(0, colon)}_${registryHost.slice(colon + 1)}_`));
  }
  out.push(join(root, registryHost), join(root, '_default'));
  return out;
}

export class HostsDirectory {
  private readonly cache = new Map<string, { at: number; config: Promise<HostDirectoryConfig | undefined> }>();

  constructor(
    readonly root: string,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The configuration for a registry (as named in references: `docker.io`,
   * `registry.example.com:5000`), or undefined when no directory applies.
   * A file that cannot be used rejects with HostsConfigError.
   */
  lookup(registryHost: string): Promise<HostDirectoryConfig | undefined> {
    const cached = this.cache.get(registryHost);
    const now = this.now();
    if (cached && now - cached.at < RELOAD_MS) return cached.config;
    const config = this.load(registryHost);
    // Failures are cached too: a broken file is reported once per reload, not once per chunk.
    config.catch(() => {});
    this.cache.set(registryHost, { at: now, config });
    return config;
  }

  private async load(registryHost: string): Promise<HostDirectoryConfig | undefined> {
    for (const dir of hostDirectoryCandidates(this.root, registryHost)) {
      if (!(await isDirectory(dir, registryHost))) continue;
      const file = join(dir, 'hosts.toml');
      let text: string | undefined;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new HostsConfigError(registryHost, file, (err as Error).message, err);
      }
      if (text === undefined || text.trim() === '') return loadCertificateFiles(dir, registryHost);
      try {
        const parsed = parseHostsFile(text, dir);
        return { source: file, hosts: parsed.hosts, ignoredKeys: parsed.ignoredKeys };
      } catch (err) {
        if (err instanceof HostsFileSyntaxError) throw new HostsConfigError(registryHost, file, err.message, err);
        throw err;
      }
    }
    return undefined;
  }
}

async function isDirectory(path: string, registryHost: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
    throw new HostsConfigError(registryHost, path, (err as Error).message, err);
  }
}

/** Docker's `certs.d` layout: the registry itself, with the CAs and client pairs found in the directory. */
async function loadCertificateFiles(dir: string, registryHost: string): Promise<HostDirectoryConfig> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    throw new HostsConfigError(registryHost, dir, (err as Error).message, err);
  }
  const server: HostSpec = { capabilities: ALL_CAPABILITIES, caFiles: [], clientCertificates: [], skipVerify: false, headers: {} };
  for (const name of names) {
    if (name.endsWith('.crt')) server.caFiles.push(join(dir, name));
    else if (name.endsWith('.cert')) {
      const key = `${name.slice(0, -'.cert'.length)}.key`;
      server.clientCertificates.push(names.includes(key) ? { cert: join(dir, name), key: join(dir, key) } : { cert: join(dir, name) });
    }
  }
  return { source: dir, hosts: [server], ignoredKeys: [] };
}
