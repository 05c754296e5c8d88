/**
 * lazysnap's configuration: embedded defaults, overridden by a TOML file,
 * overridden by command-line flags. Unknown keys are errors, so a typo
 * never silently falls back to a default.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseToml } from 'smol-toml';

export interface LazysnapConfig {
  /** Unix socket the Snapshots API is served on. */
  address: string;
  /** Directory for metadata, snapshots and caches. */
  root: string;
  logLevel: LogLevel;
  /** host:port for Prometheus metrics at /metrics; empty disables it. */
  metricsAddress: string;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

export const DEFAULT_CONFIG_PATH = '/etc/lazysnap/config.toml';

export const DEFAULT_CONFIG: Readonly<LazysnapConfig> = Object.freeze({
  address: '/run/lazysnap/lazysnap.sock',
  root: '/var/lib/lazysnap',
  logLevel: 'info',
  metricsAddress: '',
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

/** TOML key → config field and how to check its value. */
const FIELDS: Record<string, { field: keyof LazysnapConfig; check: (value: unknown) => string | undefined }> = {
  address: { field: 'address', check: nonEmptyString },
  root: { field: 'root', check: nonEmptyString },
  log_level: { field: 'logLevel', check: (v) => (LOG_LEVELS.includes(v as LogLevel) ? undefined : `must be one of ${LOG_LEVELS.join(', ')}`) },
  metrics_address: { field: 'metricsAddress', check: (v) => (typeof v === 'string' ? undefined : 'must be a string') },
};

export function parseConfig(text: string, path?: string): Partial<LazysnapConfig> {
  let document: Record<string, unknown>;
  try {
    document = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`invalid TOML: ${(err as Error).message}`, path);
  }
  const out: Partial<LazysnapConfig> = {};
  for (const [key, value] of Object.entries(document)) {
    const spec = FIELDS[key];
    if (!spec) throw new ConfigError(`unknown key ${JSON.stringify(key)}; known keys: ${Object.keys(FIELDS).join(', ')}`, path);
    const problem = spec.check(value);
    if (problem) throw new ConfigError(`${key} ${problem}`, path);
    (out as Record<string, unknown>)[spec.field] = value;
  }
  return out;
}

/**
 * Reads the config file. The default path may be absent (defaults apply);
 * a path the user named must exist.
 */
export async function loadConfig(path: string | undefined, overrides: Partial<LazysnapConfig>): Promise<LazysnapConfig> {
  const filePath = path ?? DEFAULT_CONFIG_PATH;
  let fromFile: Partial<LazysnapConfig> = {};
  try {
    fromFile = parseConfig(await readFile(filePath, 'utf8'), filePath);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    if (!missing || path !== undefined) {
      throw err instanceof ConfigError ? err : new ConfigError((err as Error).message, filePath);
    }
  }
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const config = { ...DEFAULT_CONFIG, ...fromFile, ...defined } as LazysnapConfig;
  const levelProblem = FIELDS.log_level?.check(config.logLevel);
  if (levelProblem) throw new ConfigError(`log level ${levelProblem}`);
  return config;
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? undefined : 'must be a non-empty string';
}
