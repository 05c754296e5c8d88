// Which endpoints a registry call goes to, in which order, and over which
// connection pool: the registry's hosts.toml mirrors that have the needed
// capability, in the order written, then the registry itself (`server`).
// Without a host configuration it is the registry alone, as before.
import type { Dispatcher } from 'undici';
import { noopLogger, type Logger } from '../logger.js';
import type { HostCapability, HostSpec } from './hosts-file.js';
import { HostsDirectory, type HostDirectoryConfig } from './hosts-directory.js';
import { createDispatcher, type ConnectionOptions, type ProxySettings } from './proxy.js';
import { loadTlsMaterial } from './tls-material.js';

export interface RegistryEndpoint {
  /** host:port the requests go to; named in errors and logs. */
  host: string;
  /** `scheme://host:port` */
  origin: string;
  /** API root on the host, `/v2` unless the configuration says otherwise. */
  apiRoot: string;
  /** Extra headers from hosts.toml. */
  headers: Record<string, string>;
  dispatcher: Dispatcher;
  /** The registry itself (`server`), as opposed to a mirror. */
  isServer: boolean;
  /** Whether a client certificate is presented. */
  clientCertificate: boolean;
}

export interface HostRouterOptions {
  /** containerd-style hosts directory; undefined: none. */
  hostsDir?: string | undefined;
  /** The scheme for a registry spoken to by its own name (plain HTTP for loopback and insecure hosts). */
  defaultScheme: (apiHost: string) => 'http:' | 'https:';
  connection: Omit<ConnectionOptions, 'tls'>;
  proxy: ProxySettings;
  logger?: Logger;
  /** Use this dispatcher for every endpoint (tests). */
  dispatcher?: Dispatcher;
}

export class HostRouter {
  private readonly directory: HostsDirectory | undefined;
  private readonly dispatchers = new Map<string, Dispatcher>();
  /** The pool last used for each endpoint origin, for token requests to that origin. */
  private readonly byOrigin = new Map<string, Dispatcher>();
  private readonly logger: Logger;
  /** Sources whose ignored keys were already logged. */
  private readonly warned = new Set<string>();

  constructor(private readonly options: HostRouterOptions) {
    this.directory = options.hostsDir ? new HostsDirectory(options.hostsDir) : undefined;
    this.logger = options.logger ?? noopLogger;
  }

  /**
   * Endpoints for a call needing `capability` on `registry` (the name in the
   * reference) whose API host is `apiHost` (registry-1.docker.io for docker.io).
   * Rejects with HostsConfigError when that registry's configuration is unusable.
   */
  async endpoints(registry: string, apiHost: string, capability: HostCapability): Promise<RegistryEndpoint[]> {
    const config = this.directory ? await this.directory.lookup(registry) : undefined;
    if (!config) return [await this.endpoint(registry, this.defaultSpec(), apiHost, true)];
    this.warnIgnored(config);
    const specs = config.hosts.filter((spec) => spec.capabilities.has(capability));
    const server = config.hosts.at(-1);
    return Promise.all(specs.map((spec) => this.endpoint(registry, spec, apiHost, spec === server)));
  }

  async close(): Promise<void> {
    // A dispatcher passed in is the caller's to close.
    await Promise.all([...this.dispatchers.values()].map((d) => d.close()));
    this.dispatchers.clear();
    this.byOrigin.clear();
  }

  private defaultSpec(): HostSpec {
    return { capabilities: new Set(['pull', 'resolve', 'push']), caFiles: [], clientCertificates: [], skipVerify: false, headers: {} };
  }

  private async endpoint(registry: string, spec: HostSpec, apiHost: string, isServer: boolean): Promise<RegistryEndpoint> {
    const location = spec.location ?? { scheme: this.options.defaultScheme(apiHost), host: apiHost, apiRoot: '/v2' };
    const headers: Record<string, string> = {};
    for (const [name, values] of Object.entries(spec.headers)) headers[name.toLowerCase()] = values.join(', ');
    const origin = `${location.scheme}//${location.host}`;
    const dispatcher = await this.dispatcherFor(registry, spec, location.scheme);
    this.byOrigin.set(origin, dispatcher);
    const clientCertificate = location.scheme === 'https:' && spec.clientCertificates.length > 0;
    return { host: location.host, origin, apiRoot: location.apiRoot, headers, dispatcher, isServer, clientCertificate };
  }

  /** The pool for requests to an origin outside the host configuration (token servers, redirects). */
  dispatcherForOrigin(origin: string): Dispatcher {
    return this.byOrigin.get(origin) ?? this.defaultDispatcher();
  }

  private defaultDispatcher(): Dispatcher {
    if (this.options.dispatcher) return this.options.dispatcher;
    let dispatcher = this.dispatchers.get('default');
    if (!dispatcher) {
      dispatcher = createDispatcher({ ...this.options.connection }, this.options.proxy);
      this.dispatchers.set('default', dispatcher);
    }
    return dispatcher;
  }

  private async dispatcherFor(registry: string, spec: HostSpec, scheme: string): Promise<Dispatcher> {
    if (this.options.dispatcher) return this.options.dispatcher;
    const custom = scheme === 'https:' && (spec.caFiles.length > 0 || spec.clientCertificates.length > 0 || spec.skipVerify);
    if (!custom) return this.defaultDispatcher();
    const tls = await loadTlsMaterial(spec, registry);
    const key = tls.fingerprint;
    let dispatcher = this.dispatchers.get(key);
    if (!dispatcher) {
      const options: NonNullable<ConnectionOptions['tls']> = { rejectUnauthorized: tls.rejectUnauthorized };
      if (tls.ca) options.ca = tls.ca;
      if (tls.cert && tls.key) {
        options.cert = tls.cert;
        options.key = tls.key;
      }
      const connection: ConnectionOptions = { ...this.options.connection, tls: options };
      dispatcher = createDispatcher(connection, this.options.proxy);
      this.dispatchers.set(key, dispatcher);
    }
    return dispatcher;
  }

  private warnIgnored(config: HostDirectoryConfig): void {
    if (config.ignoredKeys.length === 0 || this.warned.has(config.source)) return;
    this.warned.add(config.source);
    this.logger.warn({ file: config.source, keys: config.ignoredKeys }, 'hosts.toml keys lazysnap does not know are ignored');
  }
}
