// containerd's registry host configuration file (`certs.d/HOST/hosts.toml`),
// parsed with containerd's semantics (remotes/docker/config/hosts.go), so one
// file configures containerd and lazysnap alike: the `[host."…"]` tables are
// tried in the order they are written, then `server`; capabilities default to
// all three; the API root is the URL's path plus `/v2` unless override_path;
// relative file names are relative to the file's directory.
import { isAbsolute, join } from 'node:path';
import { parse as parseToml } from 'smol-toml';

export type HostCapability = 'pull' | 'resolve' | 'push';

export const ALL_CAPABILITIES: ReadonlySet<HostCapability> = new Set(['pull', 'resolve', 'push']);

/** A client certificate; without a key file, the certificate file holds the key too. */
export interface ClientCertificateFiles {
  cert: string;
  key?: string;
}

/** One endpoint as the file describes it; files are named, not yet read. */
export interface HostSpec {
  /** Where the endpoint is; undefined for a file without `server` (the registry itself, by its name). */
  location?: HostLocation;
  capabilities: ReadonlySet<HostCapability>;
  caFiles: string[];
  clientCertificates: ClientCertificateFiles[];
  skipVerify: boolean;
  /** Extra request headers (`[host."…".header]`). */
  headers: Record<string, string[]>;
}

export interface HostLocation {
  scheme: 'http:' | 'https:';
  /** host or host:port, as in a URL. */
  host: string;
  /** API root on that host, e.g. `/v2` or `/mirror/v2` (no trailing slash). */
  apiRoot: string;
}

export interface HostsFile {
  /** Mirrors in the order written, then the server (always last). */
  hosts: HostSpec[];
  /** Keys lazysnap does not know (newer containerd versions add some); ignored, as containerd does. */
  ignoredKeys: string[];
}

/** Why a hosts.toml cannot be used; the caller adds the file and host. */
export class HostsFileSyntaxError extends Error {}

const ENDPOINT_KEYS = new Set(['capabilities', 'ca', 'client', 'skip_verify', 'override_path', 'header']);

/** Parses hosts.toml text; `baseDir` (the file's directory) anchors relative file names. */
export function parseHostsFile(text: string, baseDir: string): HostsFile {
  let document: Record<string, unknown>;
  try {
    document = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new HostsFileSyntaxError(`invalid TOML: ${(err as Error).message}`);
  }
  const ignoredKeys: string[] = [];
  const hosts: HostSpec[] = [];
  const hostTables = document.host;
  if (hostTables !== undefined) {
    if (!isTable(hostTables)) throw new HostsFileSyntaxError('"host" must be a table of [host."URL"] tables');
    // smol-toml keeps tables in the order written, which is the order containerd tries them.
    for (const [name, table] of Object.entries(hostTables)) {
      if (!isTable(table)) throw new HostsFileSyntaxError(`[host.${JSON.stringify(name)}] must be a table`);
      hosts.push(parseEndpoint(name, table, baseDir, `host.${JSON.stringify(name)}.`, ignoredKeys));
    }
  }
  const server = document.server;
  if (server !== undefined && typeof server !== 'string') throw new HostsFileSyntaxError('"server" must be a string');
  const top: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(document)) {
    if (key === 'host' || key === 'server') continue;
    top[key] = value;
  }
  hosts.push(parseEndpoint(server === '' ? undefined : server, top, baseDir, '', ignoredKeys));
  return { hosts, ignoredKeys };
}

function parseEndpoint(name: string | undefined, table: Record<string, unknown>, baseDir: string, prefix: string, ignoredKeys: string[]): HostSpec {
  for (const key of Object.keys(table)) if (!ENDPOINT_KEYS.has(key)) ignoredKeys.push(prefix + key);
  const overridePath = optionalBoolean(table.override_path, `${prefix}override_path`);
  const spec: HostSpec = {
    capabilities: parseCapabilities(table.capabilities, `${prefix}capabilities`),
    caFiles: stringOrList(table.ca, `${prefix}ca`).map((p) => absolute(p, baseDir)),
    clientCertificates: parseClient(table.client, `${prefix}client`, baseDir),
    skipVerify: optionalBoolean(table.skip_verify, `${prefix}skip_verify`),
    headers: parseHeaders(table.header, `${prefix}header`),
  };
  if (name !== undefined) spec.location = parseLocation(name, overridePath);
  return spec;
}

/** `mirror.example.com`, `https://mirror:5000`, `http://10.0.0.1/path`: no scheme means HTTPS, as in containerd. */
export function parseLocation(name: string, overridePath: boolean): HostLocation {
  const text = /^https?:\/\//i.test(name) ? name : `https://${name}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new HostsFileSyntaxError(`${JSON.stringify(name)} is not a host or URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new HostsFileSyntaxError(`${JSON.stringify(name)}: scheme must be http or https`);
  if (url.username || url.password || url.search || url.hash) throw new HostsFileSyntaxError(`${JSON.stringify(name)}: only scheme, host, port and path are allowed`);
  let path = url.pathname.replace(/\/+$/, '');
  if (!overridePath && !path.endsWith('/v2')) path = `${path}/v2`;
  return { scheme: url.protocol, host: url.host, apiRoot: path };
}

function parseCapabilities(value: unknown, key: string): ReadonlySet<HostCapability> {
  if (value === undefined) return ALL_CAPABILITIES;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new HostsFileSyntaxError(`${key} must be a list of strings`);
  const out = new Set<HostCapability>();
  for (const raw of value as string[]) {
    const c = raw.toLowerCase();
    if (c !== 'pull' && c !== 'resolve' && c !== 'push') throw new HostsFileSyntaxError(`${key}: unknown capability ${JSON.stringify(raw)} (pull, resolve, push)`);
    out.add(c);
  }
  // An empty list is containerd's "not set": all capabilities.
  return out.size === 0 ? ALL_CAPABILITIES : out;
}

function parseClient(value: unknown, key: string, baseDir: string): ClientCertificateFiles[] {
  if (value === undefined) return [];
  if (typeof value === 'string') return [{ cert: absolute(value, baseDir) }];
  if (!Array.isArray(value)) throw new HostsFileSyntaxError(`${key} must be a file, a list of files or a list of [cert, key] pairs`);
  return value.map((entry) => {
    if (typeof entry === 'string') return { cert: absolute(entry, baseDir) };
    if (Array.isArray(entry) && entry.length === 2 && entry.every((p) => typeof p === 'string')) {
      return { cert: absolute(entry[0] as string, baseDir), key: absolute(entry[1] as string, baseDir) };
    }
    throw new HostsFileSyntaxError(`${key}: each entry must be a file or a [cert, key] pair`);
  });
}

function parseHeaders(value: unknown, key: string): Record<string, string[]> {
  if (value === undefined) return {};
  if (!isTable(value)) throw new HostsFileSyntaxError(`${key} must be a table`);
  const out: Record<string, string[]> = {};
  for (const [name, v] of Object.entries(value)) {
    if (typeof v === 'string') out[name] = [v];
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[name] = v as string[];
    else throw new HostsFileSyntaxError(`${key}.${name} must be a string or a list of strings`);
  }
  return out;
}

function stringOrList(value: unknown, key: string): string[] {
  if (value === undefined) return [];
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  throw new HostsFileSyntaxError(`${key} must be a file or a list of files`);
}

function optionalBoolean(value: unknown, key: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new HostsFileSyntaxError(`${key} must be true or false`);
  return value;
}

function absolute(path: string, baseDir: string): string {
  return isAbsolute(path) ? path : join(baseDir, path);
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}
