// Typed errors of the registry client. Callers (layer fetcher, pull, CLI)
// branch on the class, never on message text, and every message names the
// reference, the digest and the HTTP status so a log line alone is enough to
// tell which blob of which image failed and how.

/** One entry of the distribution spec's JSON error body. */
export interface RegistryErrorDetail {
  code: string;
  message?: string;
  detail?: unknown;
}

export interface RegistryErrorInit {
  ref?: string;
  digest?: string;
  status?: number;
  /** First `code` of the registry's JSON error body, e.g. MANIFEST_UNKNOWN. */
  code?: string;
  errors?: RegistryErrorDetail[];
  method?: string;
  url?: string;
  /** The registry host or mirror (host:port) that answered or failed. */
  host?: string;
  /** From Retry-After on 429/503: how long the registry asked us to wait. */
  retryAfterMs?: number;
  cause?: unknown;
}

export class RegistryError extends Error {
  readonly ref: string | undefined;
  readonly digest: string | undefined;
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly errors: RegistryErrorDetail[];
  readonly method: string | undefined;
  readonly url: string | undefined;
  readonly host: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, init: RegistryErrorInit = {}) {
    super(composeMessage(message, init), init.cause !== undefined ? { cause: init.cause } : undefined);
    this.name = new.target.name;
    this.ref = init.ref;
    this.digest = init.digest;
    this.status = init.status;
    this.code = init.code ?? init.errors?.[0]?.code;
    this.errors = init.errors ?? [];
    this.method = init.method;
    this.url = init.url;
    this.host = init.host;
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** 404: manifest, blob or repository unknown. */
export class NotFoundError extends RegistryError {}

/** 401/403, or credentials that a token server refused. */
export class UnauthorizedError extends RegistryError {}

/**
 * The registry could not be talked to: connection refused or reset, DNS
 * failure, TLS failure, or retries exhausted on such errors.
 */
export class RegistryUnreachableError extends RegistryError {}

/**
 * A deadline passed (connect, headers, body idle, or the whole request).
 * A subclass of RegistryUnreachableError because, for a caller, a registry
 * that does not answer in time is as unusable as one that refuses connections.
 */
export class RegistryTimeoutError extends RegistryUnreachableError {}

/** Bytes fetched do not hash to the digest they were asked for. */
export class DigestMismatchError extends RegistryError {
  readonly expected: string;
  readonly actual: string;
  constructor(message: string, expected: string, actual: string, init: RegistryErrorInit = {}) {
    super(`${message}: expected ${expected}, got ${actual}`, { ...init, digest: init.digest ?? expected });
    this.expected = expected;
    this.actual = actual;
  }
}

/** The registry returned fewer bytes than requested or than it announced. */
export class ShortReadError extends RegistryError {}

/** A reference string that does not follow the distribution grammar. */
export class InvalidReferenceError extends RegistryError {
  readonly input: string;
  constructor(input: string, reason: string) {
    super(`invalid reference ${JSON.stringify(input)}: ${reason}`);
    this.input = input;
  }
}

/** A manifest or index of a media type (or shape) we do not handle. */
export class UnsupportedMediaTypeError extends RegistryError {
  readonly mediaType: string;
  constructor(message: string, mediaType: string, init: RegistryErrorInit = {}) {
    super(`${message}: ${mediaType || '(none)'}`, init);
    this.mediaType = mediaType;
  }
}

/** An index without an entry for the wanted platform. */
export class NoMatchingPlatformError extends RegistryError {
  readonly platform: string;
  readonly available: string[];
  constructor(platform: string, available: string[], init: RegistryErrorInit = {}) {
    super(`no manifest for platform ${platform} (available: ${available.join(', ') || 'none'})`, init);
    this.platform = platform;
    this.available = available;
  }
}

/** A document (manifest, index, config, token response) that is not what it claims. */
export class InvalidContentError extends RegistryError {}

function composeMessage(message: string, init: RegistryErrorInit): string {
  const parts: string[] = [message];
  const context: string[] = [];
  if (init.ref !== undefined && !message.includes(init.ref)) context.push(`ref ${init.ref}`);
  if (init.digest !== undefined && !message.includes(init.digest)) context.push(`digest ${init.digest}`);
  if (init.host !== undefined && !message.includes(init.host) && !(init.ref ?? '').startsWith(`${init.host}/`)) context.push(`host ${init.host}`);
  if (init.status !== undefined) context.push(`HTTP ${init.status}`);
  const first = init.errors?.[0];
  if (first) context.push(first.message ? `${first.code}: ${first.message}` : first.code);
  else if (init.code !== undefined) context.push(init.code);
  if (context.length > 0) parts.push(`(${context.join(', ')})`);
  return parts.join(' ');
}

/** True for errors worth another attempt of an idempotent request. */
export function isTransientError(err: unknown): boolean {
  if (err instanceof RegistryUnreachableError) return true;
  if (err instanceof ShortReadError) return true;
  if (err instanceof RegistryError) return err.status !== undefined && isRetryableStatus(err.status);
  return false;
}

/** 429 and 5xx, except the 5xx that say "this will never work". */
export function isRetryableStatus(status: number): boolean {
  if (status === 429) return true;
  return status >= 500 && status <= 599 && status !== 501 && status !== 505;
}

/**
 * A registry host configuration (containerd's `certs.d/HOST/hosts.toml` and
 * the files it names) that cannot be used: malformed TOML, an unknown key or
 * capability, a CA or client certificate file that is missing or unreadable,
 * a key that does not match its certificate. It names the file; only the
 * registry host that directory configures is affected.
 */
export class HostsConfigError extends RegistryError {
  readonly file: string;
  constructor(host: string, file: string, reason: string, cause?: unknown) {
    super(`registry host configuration for ${host}: ${file}: ${reason}`, cause !== undefined ? { host, cause } : { host });
    this.file = file;
  }
}
