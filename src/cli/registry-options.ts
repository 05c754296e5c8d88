// The registry client settings every command derives from the config the
// same way, so `serve`, `pull` and `convert` reach a registry by the same
// mirrors, CAs, client certificates and proxies.
import type { LazysnapConfig } from '../config/index.js';
import type { Logger } from '../registry/index.js';
import { proxySettingsFromEnv, redactProxy, usesProxy, type RegistryClientOptions } from '../registry/index.js';

export function registryOptions(config: LazysnapConfig, logger: Logger, extraInsecureHosts: readonly string[] = []): RegistryClientOptions {
  const proxy = proxySettingsFromEnv(process.env);
  if (usesProxy(proxy)) logger.info({ proxy: redactProxy(proxy) }, 'registry requests go through the HTTP(S) proxy from the environment');
  return {
    platform: config.registry.platform,
    insecureHosts: [...config.registry.insecureHosts, ...extraInsecureHosts],
    hostsDir: config.registry.configPath === '' ? undefined : config.registry.configPath,
    proxy,
  };
}
