// HTTP(S) proxies from the environment, the way Go's ProxyFromEnvironment
// (and so containerd) reads them: HTTPS_PROXY for https registries,
// HTTP_PROXY for http ones, NO_PROXY for the hosts that bypass both.
// undici's EnvHttpProxyAgent applies them per request; lazysnap hands it the
// settings explicitly so what was read is what gets logged.
import { createRequire } from 'node:module';
import type { Agent as UndiciAgent, Dispatcher, EnvHttpProxyAgent as UndiciEnvHttpProxyAgent } from 'undici';

// undici's index loads all of undici (fetch, WebSocket, cache storage, mock
// agents): ~100 ms on this machine, where the Agent alone takes ~40 and the
// proxy agent ~1 more. Every registry client pays it at start, `lazysnap
// pull` before it reaches its first registry request, so only the two
// dispatchers are loaded, with the request API attached to them as undici's
// index does it (undici is pinned; the unit tests exercise this wiring).
const require = createRequire(import.meta.url);
const dispatcherBase = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
Object.assign(dispatcherBase.prototype, require('undici/lib/api/index.js') as object);
const Agent = require('undici/lib/dispatcher/agent.js') as typeof UndiciAgent;
const envHttpProxyAgent = (): typeof UndiciEnvHttpProxyAgent => require('undici/lib/dispatcher/env-http-proxy-agent.js') as typeof UndiciEnvHttpProxyAgent;

export { proxySettingsFromEnv, type ProxySettings } from './proxy-env.js';
import type { ProxySettings } from './proxy-env.js';

export function usesProxy(settings: ProxySettings): boolean {
  return settings.httpProxy !== undefined || settings.httpsProxy !== undefined;
}

/** Proxy URLs may carry credentials; logs get scheme, host and port only. */
export function redactProxy(settings: ProxySettings): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(settings)) {
    if (key === 'noProxy') out[key] = value as string;
    else {
      try {
        const url = new URL(value as string);
        out[key] = `${url.protocol}//${url.host}`;
      } catch {
        out[key] = '(unparsable)';
      }
    }
  }
  return out;
}

export interface ConnectionOptions {
  connections: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** node:tls options for the registry connection (CA, client certificate, verification). */
  tls?: { ca?: Buffer[]; cert?: Buffer; key?: Buffer; rejectUnauthorized?: boolean };
}

/** A pooled dispatcher for one TLS configuration, through the proxy when one is set. */
export function createDispatcher(options: ConnectionOptions, proxy: ProxySettings): Dispatcher {
  const connect = { timeout: options.connectTimeoutMs, ...options.tls };
  const agentOptions = {
    connections: options.connections,
    connect,
    headersTimeout: options.headersTimeoutMs,
    bodyTimeout: options.bodyTimeoutMs,
    keepAliveTimeout: 30_000,
  };
  if (!usesProxy(proxy)) return new Agent(agentOptions);
  // Through a CONNECT tunnel the registry's TLS is set up by requestTls; connect
  // is used for hosts that bypass the proxy. An explicit empty noProxy keeps
  // undici from reading the environment again behind our back.
  const EnvHttpProxyAgent = envHttpProxyAgent();
  return new EnvHttpProxyAgent({
    ...agentOptions,
    requestTls: connect,
    ...(proxy.httpProxy !== undefined ? { httpProxy: proxy.httpProxy } : {}),
    ...(proxy.httpsProxy !== undefined ? { httpsProxy: proxy.httpsProxy } : {}),
    noProxy: proxy.noProxy ?? '',
  });
}
