// The proxy settings of a process's environment, read as Go's
// ProxyFromEnvironment reads them. Apart from proxy.ts, which loads undici's
// dispatchers: `lazysnap pull` reads its environment to hand it to the
// daemon, and must not pay for loading undici to do so.

export interface ProxySettings {
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
}

/** Lower-case names win, as in curl and Go. */
export function proxySettingsFromEnv(env: NodeJS.ProcessEnv = process.env): ProxySettings {
  const pick = (name: string): string | undefined => {
    const value = env[name.toLowerCase()] ?? env[name.toUpperCase()];
    return value === undefined || value === '' ? undefined : value;
  };
  const out: ProxySettings = {};
  const httpProxy = pick('http_proxy');
  const httpsProxy = pick('https_proxy');
  const noProxy = pick('no_proxy');
  if (httpProxy !== undefined) out.httpProxy = httpProxy;
  if (httpsProxy !== undefined) out.httpsProxy = httpsProxy;
  if (noProxy !== undefined) out.noProxy = noProxy;
  return out;
}
