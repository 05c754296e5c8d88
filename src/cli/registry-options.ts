// The registry client settings every command derives from the config the
// same way, so `serve`, `pull` and `convert` reach a registry by the same
// mirrors, CAs, client certificates and proxies.
import type { LazysnapConfig } from '../config/index.js';
import type { Logger } from '../registry/index.js';
import { proxySettingsFromEnv, redactProxy, usesProxy, type ProxySettings, type RegistryClientOptions } from '../registry/index.js';

/** proxy: the settings of the process the request came from (a pull the daemon runs for the CLI); default this process's environment. */
export function registryOptions(config: LazysnapConfig, logger: Logger, extraInsecureHosts: readonly string[] = [], proxy: ProxySettings = proxySettingsFromEnv(process.env)): RegistryClientOptions {
  if (usesProxy(proxy)) logger.info({ proxy: redactProxy(proxy) }, 'registry requests go through the HTTP(S) proxy from the environment');
  return {
    platform: config.registry.platform,
    insecureHosts: [...config.registry.insecureHosts, ...extraInsecureHosts],
    hostsDir: config.registry.configPath === '' ? undefined : config.registry.configPath,
    proxy,
  };
}
