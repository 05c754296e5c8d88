// CRI's AuthConfig (runtime.v1), the credentials kubelet sends with
// PullImage, turned into the registry client's Credentials with containerd's
// reading of it: `username`/`password`, else `auth` (base64 `user:password`),
// plus an identity token (OAuth2 refresh token) or a registry token.
import { normalizeRegistryHost, type Credentials } from '../registry/credentials.js';

/** runtime.v1.AuthConfig as proto-loader decodes it (camelCase, absent strings empty). */
export interface AuthConfig {
  username?: string;
  password?: string;
  auth?: string;
  serverAddress?: string;
  identityToken?: string;
  registryToken?: string;
}

export interface AuthConfigCredentials {
  credentials: Credentials;
  /** The registry `server_address` names (normalised), when it names one. */
  serverHost: string | undefined;
}

/**
 * The credentials in an AuthConfig; undefined when it carries none (an
 * anonymous pull), 'malformed' when `auth` is not base64 of `user:password`.
 */
export function authConfigCredentials(auth: AuthConfig): AuthConfigCredentials | 'malformed' | undefined {
  const credentials: Credentials = {};
  if (auth.username) {
    credentials.username = auth.username;
    credentials.password = auth.password ?? '';
  } else if (auth.auth) {
    const decoded = decodeBasicAuth(auth.auth);
    if (!decoded) return 'malformed';
    credentials.username = decoded.username;
    credentials.password = decoded.password;
  }
  if (auth.identityToken) credentials.identityToken = auth.identityToken;
  if (auth.registryToken) credentials.registryToken = auth.registryToken;
  if (credentials.username === undefined && credentials.identityToken === undefined && credentials.registryToken === undefined) return undefined;
  return { credentials, serverHost: auth.serverAddress ? normalizeRegistryHost(auth.serverAddress) : undefined };
}

function decodeBasicAuth(b64: string): { username: string; password: string } | undefined {
  const text = b64.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const decoded = Buffer.from(text, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  // containerd trims the NULs some clients pad the password with.
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1).replace(/^\0+|\0+$/g, '') };
}
