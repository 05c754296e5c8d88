// Where registry credentials come from. The client asks a CredentialsSource
// per registry host (and says which repository and image the request is
// for), so the daemon can use the docker CLI's config file, a static map from
// its own config, the credentials kubelet sent with a CRI pull, or several.
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { defaultDockerConfigPath } from './docker-config-path.js';
import { DOCKER_HUB_DOMAIN, DOCKER_HUB_API_HOST } from './reference.js';

export { defaultDockerConfigPath };

export interface Credentials {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (docker config `identitytoken`), exchanged at the token realm. */
  identityToken?: string;
  /** A bearer token to send as is (docker config `registrytoken`). */
  registryToken?: string;
}

/**
 * What a request is for. Host-wide sources (docker config) ignore it; the CRI
 * keychain needs it, because kubelet's pull secrets belong to one image, not
 * to every repository on its registry.
 */
export interface CredentialsScope {
  /** Repository inside the registry, e.g. `library/busybox`. */
  repository?: string;
  /** The image reference the request serves, fully qualified (`docker.io/library/busybox:latest`). */
  ref?: string;
}

export interface CredentialsSource {
  /** `host` is the registry as named in references (`docker.io`, `127.0.0.1:5000`). */
  lookup(host: string, signal?: AbortSignal, scope?: CredentialsScope): Promise<Credentials | undefined>;
}

/**
 * Canonical key for a registry host: lower-case, without scheme or path, with
 * Docker Hub's several names folded into `docker.io`. Docker writes Hub
 * credentials under `https://index.docker.io/v1/`, and users write
 * `http://host:port`, so config keys need the same folding as lookups.
 */
export function normalizeRegistryHost(key: string): string {
  let host = key.trim().toLowerCase();
  host = host.replace(/^[a-z][a-z0-9+.-]*:\/\//, '');
  const slash = host.indexOf('/');
  if (slash !== -1) host = host.slice(0, slash);
  if (host === 'index.docker.io' || host === DOCKER_HUB_API_HOST || host === DOCKER_HUB_DOMAIN) return DOCKER_HUB_DOMAIN;
  return host;
}

/** A fixed map, for credentials from lazysnap's own config or tests. */
export class StaticCredentials implements CredentialsSource {
  private readonly entries = new Map<string, Credentials>();

  constructor(entries: Record<string, Credentials> | Map<string, Credentials> = {}) {
    const it = entries instanceof Map ? entries.entries() : Object.entries(entries);
    for (const [host, creds] of it) this.entries.set(normalizeRegistryHost(host), creds);
  }

  set(host: string, creds: Credentials): void {
    this.entries.set(normalizeRegistryHost(host), creds);
  }

  async lookup(host: string): Promise<Credentials | undefined> {
    return this.entries.get(normalizeRegistryHost(host));
  }
}

/** Tries sources in order; the first that knows the host wins. */
export class ChainedCredentials implements CredentialsSource {
  constructor(private readonly sources: readonly CredentialsSource[]) {}

  async lookup(host: string, signal?: AbortSignal, scope?: CredentialsScope): Promise<Credentials | undefined> {
    for (const source of this.sources) {
      const found = await source.lookup(host, signal, scope);
      if (found) return found;
    }
    return undefined;
  }
}

export interface DockerConfig {
  /** Keyed by normalised host. */
  auths: Map<string, Credentials>;
  credsStore?: string;
  /** Keyed by normalised host. */
  credHelpers: Map<string, string>;
  /** Entries that were skipped, with why (never containing secrets). */
  warnings: string[];
}

/** Parses a docker CLI config.json. Malformed entries are skipped with a warning, malformed JSON throws. */
export function parseDockerConfig(text: string): DockerConfig {
  const doc: unknown = JSON.parse(text);
  const out: DockerConfig = { auths: new Map(), credHelpers: new Map(), warnings: [] };
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    out.warnings.push('config is not a JSON object');
    return out;
  }
  const root = doc as Record<string, unknown>;
  const auths = root.auths;
  if (typeof auths === 'object' && auths !== null) {
    for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
      const host = normalizeRegistryHost(key);
      if (typeof value !== 'object' || value === null) {
        out.warnings.push(`auths[${JSON.stringify(key)}] is not an object`);
        continue;
      }
      const entry = value as Record<string, unknown>;
      const creds: Credentials = {};
      if (typeof entry.auth === 'string' && entry.auth !== '') {
        const decoded = decodeBasicAuthField(entry.auth);
        if (!decoded) {
          out.warnings.push(`auths[${JSON.stringify(key)}].auth is not base64 of "user:password"`);
          continue;
        }
        creds.username = decoded.username;
        creds.password = decoded.password;
      } else {
        if (typeof entry.username === 'string' && entry.username !== '') creds.username = entry.username;
        if (typeof entry.password === 'string') creds.password = entry.password;
      }
      if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') creds.identityToken = entry.identitytoken;
      if (typeof entry.registrytoken === 'string' && entry.registrytoken !== '') creds.registryToken = entry.registrytoken;
      if (creds.username === undefined && creds.identityToken === undefined && creds.registryToken === undefined) {
        // `{}` entries are what `docker login` leaves when a creds store holds the secret.
        continue;
      }
      // Several keys can fold into one host (docker.io); the first one written wins, like docker.
      if (!out.auths.has(host)) out.auths.set(host, creds);
    }
  }
  if (typeof root.credsStore === 'string' && root.credsStore !== '') out.credsStore = root.credsStore;
  if (typeof root.credHelpers === 'object' && root.credHelpers !== null) {
    for (const [key, helper] of Object.entries(root.credHelpers as Record<string, unknown>)) {
      if (typeof helper === 'string' && helper !== '') out.credHelpers.set(normalizeRegistryHost(key), helper);
    }
  }
  return out;
}

function decodeBasicAuthField(b64: string): { username: string; password: string } | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64.trim())) return null;
  const text = Buffer.from(b64.trim(), 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return null;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

export interface DockerConfigCredentialsOptions {
  /** Path of config.json; default from defaultDockerConfigPath(). */
  path?: string;
  /** Run `docker-credential-<name>` helpers named by credsStore/credHelpers; default true. */
  useHelpers?: boolean;
  helperTimeoutMs?: number;
  /** Called with problems found in the file (never secrets). */
  onWarning?: (message: string) => void;
}

/**
 * Credentials from the docker CLI's config.json. The file is re-read when
 * its mtime changes, so a `docker login` while the daemon runs takes effect
 * without a restart; a missing file means "no credentials".
 */
export class DockerConfigCredentials implements CredentialsSource {
  readonly path: string;
  private readonly useHelpers: boolean;
  private readonly helperTimeoutMs: number;
  private readonly onWarning: ((message: string) => void) | undefined;
  private cached: { mtimeMs: number; size: number; config: DockerConfig } | undefined;

  constructor(options: DockerConfigCredentialsOptions = {}) {
    this.path = options.path ?? defaultDockerConfigPath();
    this.useHelpers = options.useHelpers ?? true;
    this.helperTimeoutMs = options.helperTimeoutMs ?? 10_000;
    this.onWarning = options.onWarning;
  }

  async lookup(host: string, signal?: AbortSignal): Promise<Credentials | undefined> {
    const config = await this.load();
    if (!config) return undefined;
    const key = normalizeRegistryHost(host);
    const helper = config.credHelpers.get(key);
    if (helper && this.useHelpers) return this.runHelper(helper, key, signal);
    const direct = config.auths.get(key);
    if (direct) return direct;
    if (config.credsStore && this.useHelpers) return this.runHelper(config.credsStore, key, signal);
    return undefined;
  }

  private async load(): Promise<DockerConfig | undefined> {
    let st;
    try {
      st = await stat(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    if (this.cached && this.cached.mtimeMs === st.mtimeMs && this.cached.size === st.size) return this.cached.config;
    const text = await readFile(this.path, 'utf8');
    let config: DockerConfig;
    try {
      config = parseDockerConfig(text);
    } catch (err) {
      throw new Error(`cannot parse docker config ${this.path}: ${(err as Error).message}`);
    }
    for (const w of config.warnings) this.onWarning?.(`${this.path}: ${w}`);
    this.cached = { mtimeMs: st.mtimeMs, size: st.size, config };
    return config;
  }

  // The credential-helper protocol: `docker-credential-NAME get`, server URL
  // on stdin, JSON {ServerURL, Username, Secret} on stdout. Docker Hub is
  // stored under its legacy v1 URL.
  private runHelper(name: string, host: string, signal?: AbortSignal): Promise<Credentials | undefined> {
    const serverUrl = host === DOCKER_HUB_DOMAIN ? 'https://index.docker.io/v1/' : host;
    return new Promise((resolve, reject) => {
      const child = execFile(
        `docker-credential-${name}`,
        ['get'],
        { timeout: this.helperTimeoutMs, maxBuffer: 1 << 20, ...(signal ? { signal } : {}) },
        (err, stdout) => {
          if (err) {
            const text = String(stdout ?? '');
            // Helpers say "credentials not found in native keychain" on a miss.
            if (/not found/i.test(text) || /not found/i.test(err.message)) resolve(undefined);
            else reject(new Error(`credential helper docker-credential-${name} failed for ${host}: ${err.message}`));
            return;
          }
          try {
            const doc = JSON.parse(String(stdout)) as { Username?: string; Secret?: string };
            if (!doc.Secret) return resolve(undefined);
            if (doc.Username === '<token>') return resolve({ identityToken: doc.Secret });
            resolve({ username: doc.Username ?? '', password: doc.Secret });
          } catch (parseErr) {
            reject(new Error(`credential helper docker-credential-${name} printed invalid JSON: ${(parseErr as Error).message}`));
          }
        },
      );
      child.stdin?.end(serverUrl);
    });
  }
}
