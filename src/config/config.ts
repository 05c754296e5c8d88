/**
 * lazysnap's configuration: embedded defaults, overridden by a TOML file,
 * overridden by command-line flags. Unknown keys are errors, so a typo
 * never silently falls back to a default.
 */
import { readFile } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { createRequire } from 'node:module';

// The TOML parser is loaded when a config file is read, not with this module:
// `lazysnap --help` and every command's start need the defaults here, not
// the parser (~15 ms of loading).
const require = createRequire(import.meta.url);
let tomlParser: typeof import('smol-toml').parse | undefined;
function parseToml(text: string): unknown {
  tomlParser ??= (require('smol-toml') as typeof import('smol-toml')).parse;
  return tomlParser(text);
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/** auto: text when stderr is a terminal, JSON lines otherwise (a journal, a file, a log collector). */
export type LogFormat = 'auto' | 'json' | 'text';

export const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'text'];

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
  /**
   * Background fetch starts only after no layer has been read for this long, and
   * pauses while reads come: a starting container gets the CPU and the link.
   */
  backgroundFetchIdleSeconds: number;
  /** Cap on background fetch bandwidth, all layers together, in MiB/s; 0: none. */
  backgroundFetchBandwidthMiB: number;
  memoryCacheMiB: number;
  diskCacheMiB: number;
  /**
   * Memory budget for the TOCs of all mounted lazy layers; a layer whose TOC
   * does not fit is downloaded normally instead of served lazily.
   */
  tocMemoryMiB: number;
  /**
   * Every FUSE request is answered within this many seconds, EIO at worst: a
   * reader in a container cannot be interrupted while its request is in flight.
   */
  fuseAnswerTimeoutSeconds: number;
}

export interface RegistryConfig {
  /** Hosts spoken to over plain HTTP (localhost and 127.0.0.1 always are). */
  insecureHosts: string[];
  /** Platform picked from multi-platform images. */
  platform: string;
  /**
   * containerd-style registry host configuration directory (`HOST/hosts.toml`:
   * mirrors, CAs, client certificates); "" turns it off.
   */
  configPath: string;
}

/**
 * lazysnap as kubelet's CRI image service, forwarding to containerd's and
 * keeping each PullImage's credentials (pull secrets) in memory for that
 * image's layers. Named as in stargz-snapshotter.
 */
export interface CriKeychainConfig {
  enableKeychain: boolean;
  /** Unix socket of the CRI image service calls are forwarded to (containerd's). */
  imageServicePath: string;
}

/**
 * The FUSE mounts of lazy layers served by a process of their own
 * (`lazysnap fuse-manager`), which outlives restarts, crashes and upgrades of
 * the daemon. Off: the daemon serves them itself, and they die with it.
 */
export interface FuseManagerConfig {
  enable: boolean;
}

export interface LazysnapConfig {
  /** Unix socket the Snapshots API is served on. */
  address: string;
  /** Directory for metadata, snapshots and caches. */
  root: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** host:port for Prometheus metrics at /metrics; empty disables it. */
  metricsAddress: string;
  remote: RemoteConfig;
  registry: RegistryConfig;
  criKeychain: CriKeychainConfig;
  fuseManager: FuseManagerConfig;
}

export const DEFAULT_CONFIG_PATH = '/etc/lazysnap/config.toml';

export const DEFAULT_CONFIG: Readonly<LazysnapConfig> = Object.freeze({
  address: '/run/lazysnap/lazysnap.sock',
  root: '/var/lib/lazysnap',
  logLevel: 'info',
  logFormat: 'auto',
  metricsAddress: '',
  remote: {
    enabled: true,
    allowUnverified: false,
    fetchTimeoutSeconds: 30,
    prefetch: true,
    backgroundFetch: true,
    backgroundFetchConcurrency: 2,
    backgroundFetchIdleSeconds: 5,
    backgroundFetchBandwidthMiB: 64,
    memoryCacheMiB: 256,
    diskCacheMiB: 10240,
    tocMemoryMiB: 512,
    fuseAnswerTimeoutSeconds: 30,
  },
  registry: {
    insecureHosts: [],
    platform: 'linux/amd64',
    configPath: '/etc/containerd/certs.d',
  },
  criKeychain: {
    enableKeychain: false,
    imageServicePath: '/run/containerd/containerd.sock',
  },
  fuseManager: {
    enable: true,
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

/** Why a value is not allowed, or undefined when it is. */
type Check = (value: unknown) => string | undefined;

interface FieldSpec {
  /** The field of the config object this key sets. */
  field: string;
  check: Check;
  /** The command-line flag that sets the same field, if any. */
  flag?: string;
}

const nonEmptyString: Check = (v) => (typeof v === 'string' && v !== '' ? undefined : `must be a non-empty string, got ${show(v)}`);
const boolean: Check = (v) => (typeof v === 'boolean' ? undefined : `must be true or false, got ${show(v)}`);
const stringList: Check = (v) => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? undefined : 'must be a list of strings');
const absolutePath: Check = (v) => (typeof v === 'string' && v.startsWith('/') ? undefined : `must be an absolute path, got ${show(v)}`);
const absolutePathOrEmpty: Check = (v) =>
  typeof v === 'string' && (v === '' || v.startsWith('/')) ? undefined : `must be an absolute path, or "" to turn it off, got ${show(v)}`;
const logLevel: Check = (v) => (LOG_LEVELS.includes(v as LogLevel) ? undefined : `must be one of ${LOG_LEVELS.join(', ')}, got ${show(v)}`);
const logFormat: Check = (v) => (LOG_FORMATS.includes(v as LogFormat) ? undefined : `must be one of ${LOG_FORMATS.join(', ')}, got ${show(v)}`);

/**
 * Every number in the config is a count of something, so an integer within
 * bounds the code below it can honour: a timeout past Node's timer range or
 * a fractional concurrency would be accepted here and break every layer later.
 */
function integerIn(min: number, max: number): Check {
  return (v) => (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? undefined : `must be an integer from ${min} to ${max}, got ${show(v)}`);
}

const metricsAddress: Check = (v) => {
  if (v === '') return undefined;
  if (typeof v === 'string' && parseListenAddress(v)) return undefined;
  return `must be HOST:PORT (or :PORT, or [IPv6]:PORT) with a port from 1 to 65535, or "" to disable metrics, got ${show(v)}`;
};

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : Array.isArray(value) ? 'a list' : typeof value === 'object' && value !== null ? 'a table' : String(value);
}

/**
 * TOML key → config field, per section ('' is the top level). Maps, not
 * object literals: a key named `constructor` or `toString` must be unknown,
 * not found on Object.prototype.
 */
const SECTIONS: ReadonlyMap<string, ReadonlyMap<string, FieldSpec>> = new Map([
  [
    '',
    new Map<string, FieldSpec>([
      ['address', { field: 'address', check: nonEmptyString, flag: '--address' }],
      ['root', { field: 'root', check: nonEmptyString, flag: '--root' }],
      ['log_level', { field: 'logLevel', check: logLevel, flag: '--log-level' }],
      ['log_format', { field: 'logFormat', check: logFormat, flag: '--log-format' }],
      ['metrics_address', { field: 'metricsAddress', check: metricsAddress, flag: '--metrics-address' }],
    ]),
  ],
  [
    'remote',
    new Map<string, FieldSpec>([
      ['enabled', { field: 'enabled', check: boolean }],
      ['allow_unverified', { field: 'allowUnverified', check: boolean }],
      // An hour is far past any sane registry round trip, and far below the 2^31-1 ms timer limit.
      ['fetch_timeout_seconds', { field: 'fetchTimeoutSeconds', check: integerIn(1, 3600) }],
      ['prefetch', { field: 'prefetch', check: boolean }],
      ['background_fetch', { field: 'backgroundFetch', check: boolean }],
      ['background_fetch_concurrency', { field: 'backgroundFetchConcurrency', check: integerIn(1, 64) }],
      ['background_fetch_idle_seconds', { field: 'backgroundFetchIdleSeconds', check: integerIn(0, 3600) }],
      // 0: no cap.
      ['background_fetch_bandwidth_mib', { field: 'backgroundFetchBandwidthMiB', check: integerIn(0, 65536) }],
      // 0 turns a cache tier off.
      ['memory_cache_mib', { field: 'memoryCacheMiB', check: integerIn(0, 65536) }],
      ['disk_cache_mib', { field: 'diskCacheMiB', check: integerIn(0, 16 * 1024 * 1024) }],
      ['toc_memory_mib', { field: 'tocMemoryMiB', check: integerIn(16, 65536) }],
      ['fuse_answer_timeout_seconds', { field: 'fuseAnswerTimeoutSeconds', check: integerIn(1, 3600) }],
    ]),
  ],
  [
    'registry',
    new Map<string, FieldSpec>([
      ['insecure_hosts', { field: 'insecureHosts', check: stringList }],
      ['platform', { field: 'platform', check: nonEmptyString }],
      ['config_path', { field: 'configPath', check: absolutePathOrEmpty, flag: '--hosts-dir' }],
    ]),
  ],
  [
    'cri_keychain',
    new Map<string, FieldSpec>([
      ['enable_keychain', { field: 'enableKeychain', check: boolean }],
      ['image_service_path', { field: 'imageServicePath', check: absolutePath }],
    ]),
  ],
  ['fuse_manager', new Map<string, FieldSpec>([['enable', { field: 'enable', check: boolean, flag: '--fuse-manager / --no-fuse-manager' }]])],
]);

/** Config fields of sections whose TOML name is not the field's (stargz-snapshotter's spelling). */
const SECTION_FIELDS: ReadonlyMap<string, string> = new Map([
  ['cri_keychain', 'criKeychain'],
  ['fuse_manager', 'fuseManager'],
]);

function sectionField(section: string): string {
  return SECTION_FIELDS.get(section) ?? section;
}

const TOP_LEVEL = SECTIONS.get('') as ReadonlyMap<string, FieldSpec>;

export type ConfigOverrides = Partial<Omit<LazysnapConfig, 'remote' | 'registry' | 'criKeychain' | 'fuseManager'>> & {
  remote?: Partial<RemoteConfig>;
  registry?: Partial<RegistryConfig>;
  criKeychain?: Partial<CriKeychainConfig>;
  fuseManager?: Partial<FuseManagerConfig>;
};

export function parseConfig(text: string, path?: string): ConfigOverrides {
  let document: Record<string, unknown>;
  try {
    document = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`invalid TOML: ${(err as Error).message}`, path);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(document)) {
    const section = key === '' ? undefined : SECTIONS.get(key);
    if (section) {
      if (!isTable(value)) throw new ConfigError(`[${key}] must be a table`, path);
      out[sectionField(key)] = parseSection(key, section, value, path);
      continue;
    }
    Object.assign(out, parseSection('', TOP_LEVEL, { [key]: value }, path));
  }
  return out as ConfigOverrides;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function parseSection(name: string, specs: ReadonlyMap<string, FieldSpec>, values: Record<string, unknown>, path?: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(values)) {
    const spec = specs.get(key);
    if (!spec) {
      const known = [...specs.keys()].concat(name === '' ? [...SECTIONS.keys()].filter((s) => s !== '').map((s) => `[${s}]`) : []);
      throw new ConfigError(`unknown key ${name ? `[${name}] ` : ''}${JSON.stringify(key)}; known: ${known.join(', ')}`, path);
    }
    const problem = spec.check(value);
    if (problem) throw new ConfigError(`${keyName(name, key)} ${problem}`, path);
    out[spec.field] = value;
  }
  return out;
}

/** A key as the user writes it in TOML: `root`, `[remote] fetch_timeout_seconds`. */
function keyName(section: string, key: string): string {
  return section ? `[${section}] ${key}` : key;
}

/**
 * Checks values that did not come from the file (flags, or a caller's
 * overrides) with the same rules, named the way the user gave them.
 */
function checkOverrides(overrides: ConfigOverrides): void {
  for (const [section, specs] of SECTIONS) {
    const values = section === '' ? overrides : (overrides as Record<string, unknown>)[sectionField(section)];
    if (!isTable(values)) continue;
    for (const [key, spec] of specs) {
      if (!Object.hasOwn(values, spec.field)) continue;
      const value = values[spec.field];
      if (value === undefined) continue;
      const problem = spec.check(value);
      if (problem) throw new ConfigError(`${spec.flag ?? keyName(section, key)} ${problem}`);
    }
  }
}

export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * Parses `HOST:PORT`, `:PORT` (loopback) or `[IPv6]:PORT`; undefined when
 * the text is none of these or the port is not 1-65535.
 */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):([0-9]{1,5})$/.exec(text);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  const v6 = match[1];
  if (v6 !== undefined) return isIPv6(v6) ? { host: v6, port } : undefined;
  return { host: match[2] || '127.0.0.1', port };
}

export interface LoadedConfig {
  config: LazysnapConfig;
  /** The file the config was read from; undefined when the default path was absent. */
  file: string | undefined;
}

/**
 * Reads the config file and applies the overrides (flags) on top, all
 * validated here, before the daemon binds or creates anything. The default
 * path may be absent (defaults apply); a path the user named must exist.
 */
export async function loadConfigWithSource(path: string | undefined, overrides: ConfigOverrides): Promise<LoadedConfig> {
  checkOverrides(overrides);
  const filePath = path ?? DEFAULT_CONFIG_PATH;
  let fromFile: ConfigOverrides = {};
  let file: string | undefined = filePath;
  try {
    fromFile = parseConfig(await readFile(filePath, 'utf8'), filePath);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    if (!missing || path !== undefined) {
      throw err instanceof ConfigError ? err : new ConfigError((err as Error).message, filePath);
    }
    file = undefined;
  }
  const config: LazysnapConfig = {
    ...DEFAULT_CONFIG,
    ...definedOnly(fromFile),
    ...definedOnly(overrides),
    remote: { ...DEFAULT_CONFIG.remote, ...definedOnly(fromFile.remote ?? {}), ...definedOnly(overrides.remote ?? {}) },
    registry: { ...DEFAULT_CONFIG.registry, ...definedOnly(fromFile.registry ?? {}), ...definedOnly(overrides.registry ?? {}) },
    criKeychain: { ...DEFAULT_CONFIG.criKeychain, ...definedOnly(fromFile.criKeychain ?? {}), ...definedOnly(overrides.criKeychain ?? {}) },
    fuseManager: { ...DEFAULT_CONFIG.fuseManager, ...definedOnly(fromFile.fuseManager ?? {}), ...definedOnly(overrides.fuseManager ?? {}) },
  } as LazysnapConfig;
  return { config, file };
}

export async function loadConfig(path: string | undefined, overrides: ConfigOverrides): Promise<LazysnapConfig> {
  return (await loadConfigWithSource(path, overrides)).config;
}

const NESTED_SECTIONS: ReadonlySet<string> = new Set(['remote', 'registry', 'criKeychain', 'fuseManager']);

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([k, v]) => v !== undefined && !NESTED_SECTIONS.has(k))) as Partial<T>;
}
