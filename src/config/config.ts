/**
 * lazysnap's configuration: embedded defaults, overridden by a TOML file,
 * overridden by command-line flags. Unknown keys are errors, so a typo
 * never silently falls back to a default.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseToml } from 'smol-toml';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

export interface RemoteConfig {
  /** Serve eStargz layers lazily. Off: every layer is downloaded by the client. */
  enabled: boolean;
  /** Serve layers whose TOC digest is unknown (no annotation): unsafe, off by default. */
  allowUnverified: boolean;
  /** Deadline of one registry read; a dead registry turns into EIO after this. */
  fetchTimeoutSeconds: number;
  /** Fetch the prioritized (landmark) part of each layer when it is mounted. */
  prefetch: boolean;
  /** Fetch the rest of each layer in the background, yielding to reads. */
  backgroundFetch: boolean;
  backgroundFetchConcurrency: number;
  memoryCacheMiB: number;
  diskCacheMiB: number;
}

export interface RegistryConfig {
  /** Hosts spoken to over plain HTTP (localhost and 127.0.0.1 always are). */
  insecureHosts: string[];
  /** Platform picked from multi-platform images. */
  platform: string;
}

export interface LazysnapConfig {
  /** Unix socket the Snapshots API is served on. */
  address: string;
  /** Directory for metadata, snapshots and caches. */
  root: string;
  logLevel: LogLevel;
  /** host:port for Prometheus metrics at /metrics; empty disables it. */
  metricsAddress: string;
  remote: RemoteConfig;
  registry: RegistryConfig;
}

export const DEFAULT_CONFIG_PATH = '/etc/lazysnap/config.toml';

export const DEFAULT_CONFIG: Readonly<LazysnapConfig> = Object.freeze({
  address: '/run/lazysnap/lazysnap.sock',
  root: '/var/lib/lazysnap',
  logLevel: 'info',
  metricsAddress: '',
  remote: {
    enabled: true,
    allowUnverified: false,
    fetchTimeoutSeconds: 30,
    prefetch: true,
    backgroundFetch: true,
    backgroundFetchConcurrency: 2,
    memoryCacheMiB: 256,
    diskCacheMiB: 10240,
  },
  registry: {
    insecureHosts: [],
    platform: 'linux/amd64',
  },
});

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly path?: string,
  ) {
    super(path ? `config ${path}: ${message}` : message);
    this.name = 'ConfigError';
  }
}

type Check = (value: unknown) => string | undefined;

interface FieldSpec {
  field: string;
  check: Check;
}

const nonEmptyString: Check = (v) => (typeof v === 'string' && v !== '' ? undefined : 'must be a non-empty string');
const anyString: Check = (v) => (typeof v === 'string' ? undefined : 'must be a string');
const boolean: Check = (v) => (typeof v === 'boolean' ? undefined : 'must be true or false');
const positive: Check = (v) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? undefined : 'must be a positive number');
const stringList: Check = (v) => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? undefined : 'must be a list of strings');

/** TOML key → config field, per section ('' is the top level). */
const SECTIONS: Record<string, Record<string, FieldSpec>> = {
  '': {
    address: { field: 'address', check: nonEmptyString },
    root: { field: 'root', check: nonEmptyString },
    log_level: { field: 'logLevel', check: (v) => (LOG_LEVELS.includes(v as LogLevel) ? undefined : `must be one of ${LOG_LEVELS.join(', ')}`) },
    metrics_address: { field: 'metricsAddress', check: anyString },
  },
  remote: {
    enabled: { field: 'enabled', check: boolean },
    allow_unverified: { field: 'allowUnverified', check: boolean },
    fetch_timeout_seconds: { field: 'fetchTimeoutSeconds', check: positive },
    prefetch: { field: 'prefetch', check: boolean },
    background_fetch: { field: 'backgroundFetch', check: boolean },
    background_fetch_concurrency: { field: 'backgroundFetchConcurrency', check: positive },
    memory_cache_mib: { field: 'memoryCacheMiB', check: positive },
    disk_cache_mib: { field: 'diskCacheMiB', check: positive },
  },
  registry: {
    insecure_hosts: { field: 'insecureHosts', check: stringList },
    platform: { field: 'platform', check: nonEmptyString },
  },
};

export type ConfigOverrides = Partial<Omit<LazysnapConfig, 'remote' | 'registry'>> & { remote?: Partial<RemoteConfig>; registry?: Partial<RegistryConfig> };

export function parseConfig(text: string, path?: string): ConfigOverrides {
  let document: Record<string, unknown>;
  try {
    document = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`invalid TOML: ${(err as Error).message}`, path);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(document)) {
    const section = SECTIONS[key];
    if (section && key !== '') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`[${key}] must be a table`, path);
      out[key] = parseSection(key, section, value as Record<string, unknown>, path);
      continue;
    }
    Object.assign(out, parseSection('', SECTIONS[''] as Record<string, FieldSpec>, { [key]: value }, path));
  }
  return out as ConfigOverrides;
}

function parseSection(name: string, specs: Record<string, FieldSpec>, values: Record<string, unknown>, path?: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const where = name ? `[${name}] ` : '';
  for (const [key, value] of Object.entries(values)) {
    const spec = specs[key];
    if (!spec) {
      const known = Object.keys(specs).concat(name === '' ? Object.keys(SECTIONS).filter((s) => s !== '').map((s) => `[${s}]`) : []);
      throw new ConfigError(`unknown key ${where}${JSON.stringify(key)}; known: ${known.join(', ')}`, path);
    }
    const problem = spec.check(value);
    if (problem) throw new ConfigError(`${where}${key} ${problem}`, path);
    out[spec.field] = value;
  }
  return out;
}

/**
 * Reads the config file. The default path may be absent (defaults apply);
 * a path the user named must exist.
 */
export async function loadConfig(path: string | undefined, overrides: ConfigOverrides): Promise<LazysnapConfig> {
  const filePath = path ?? DEFAULT_CONFIG_PATH;
  let fromFile: ConfigOverrides = {};
  try {
    fromFile = parseConfig(await readFile(filePath, 'utf8'), filePath);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    if (!missing || path !== undefined) {
      throw err instanceof ConfigError ? err : new ConfigError((err as Error).message, filePath);
    }
  }
  const flags = definedOnly(overrides);
  const config: LazysnapConfig = {
    ...DEFAULT_CONFIG,
    ...definedOnly(fromFile),
    ...flags,
    remote: { ...DEFAULT_CONFIG.remote, ...definedOnly(fromFile.remote ?? {}), ...definedOnly(overrides.remote ?? {}) },
    registry: { ...DEFAULT_CONFIG.registry, ...definedOnly(fromFile.registry ?? {}), ...definedOnly(overrides.registry ?? {}) },
  } as LazysnapConfig;
  const levelProblem = SECTIONS['']?.log_level?.check(config.logLevel);
  if (levelProblem) throw new ConfigError(`log level ${levelProblem}`);
  return config;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([k, v]) => v !== undefined && k !== 'remote' && k !== 'registry')) as Partial<T>;
}
