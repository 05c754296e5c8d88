// The HTTP layer under every registry call: scheme choice, undici connection
// pooling, deadlines, auth challenges, manual redirects and retries, and
// the mapping of everything that can go wrong onto the typed errors.
//
// Every call goes to the endpoints the registry's host configuration
// (containerd's hosts.toml) lists for what it needs, in order: a mirror that
// fails hands the call to the next one and in the end to the registry itself.
//
// Redirects are followed by hand because blob GETs are commonly redirected
// to object storage (S3, GCS, a CDN) with a pre-signed URL: the registry's
// Authorization header must not travel there, and some stores reject a
// request that carries one.
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { Authenticator, type AuthHttp } from './auth.js';
import type { CredentialsSource } from './credentials.js';
import {
  InvalidContentError,
  NotFoundError,
  RegistryError,
  RegistryTimeoutError,
  RegistryUnreachableError,
  UnauthorizedError,
  isRetryableStatus,
  type RegistryErrorDetail,
  type RegistryErrorInit,
} from './errors.js';
import { HostRouter, type RegistryEndpoint } from './hosts/host-router.js';
import type { HostCapability } from './hosts/hosts-file.js';
import type { ProxySettings } from './hosts/proxy.js';
import { noopLogger, type Logger } from './logger.js';
import type { Reference } from './reference.js';
import { backoffDelay, parseRetryAfter, resolveRetryPolicy, shouldRetry, sleep, type RetryPolicy } from './retry.js';

export interface Timeouts {
  /** TCP (and TLS) connection establishment. */
  connectMs: number;
  /** From sending a request to receiving the response headers. */
  headersMs: number;
  /** Longest silence while a response body is being received. */
  bodyMs: number;
  /**
   * Deadline for a whole call, retries included. For calls that hand a body
   * stream to the caller it runs until the stream is handed over; from then
   * on bodyMs and the caller's AbortSignal govern.
   */
  requestMs: number;
}

export const DEFAULT_TIMEOUTS: Readonly<Timeouts> = Object.freeze({
  connectMs: 10_000,
  headersMs: 30_000,
  bodyMs: 30_000,
  requestMs: 120_000,
});

export interface TransportOptions {
  /** Registries (host or host:port) spoken to over plain HTTP. localhost, 127.0.0.1 and [::1] always are. */
  insecureHosts?: readonly string[];
  credentials?: CredentialsSource | undefined;
  timeouts?: Partial<Timeouts>;
  retry?: Partial<RetryPolicy>;
  logger?: Logger | undefined;
  /** Concurrent connections per origin; default 16. */
  connectionsPerOrigin?: number;
  userAgent?: string;
  maxRedirects?: number;
  /** Use this dispatcher for every endpoint instead of creating undici Agents (tests). */
  dispatcher?: Dispatcher;
  /** containerd-style registry host configuration directory (`[registry] config_path`); none when undefined. */
  hostsDir?: string | undefined;
  /** HTTP(S) proxies; none by default (the CLI passes the environment's). */
  proxy?: ProxySettings;
  /** Random source for retry jitter; for tests. */
  random?: () => number;
}

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RegistryRequest {
  ref: Reference;
  method: HttpMethod;
  /** `/v2/...` on the registry, or an absolute URL such as an upload Location. */
  path: string;
  headers?: Record<string, string>;
  /** Buffers can be re-sent after a 401; a stream cannot. */
  body?: Buffer | Uint8Array | string | Readable;
  /** Token scopes this request needs, e.g. `repository:foo/bar:pull`. */
  scopes: readonly string[];
  /** For error messages: what is being fetched or pushed (`manifest`, `blob`, `blob upload`). */
  what: string;
  digest?: string | undefined;
  /** Statuses passed to the handler rather than turned into errors; default 2xx. */
  accept?: (status: number) => boolean;
  signal?: AbortSignal | undefined;
  /** Overrides timeouts.requestMs for this call. */
  timeoutMs?: number | undefined;
  /** Default true for GET/HEAD, false otherwise. */
  followRedirects?: boolean;
  /** Which hosts may serve it (hosts.toml capabilities); default pull for GET/HEAD, push otherwise. */
  capability?: HostCapability;
}

export interface RegistryResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
  /** Final URL after redirects. */
  url: URL;
}

export type ResponseHandler<T> = (res: RegistryResponse, signal: AbortSignal) => Promise<T>;

const MAX_ERROR_BODY = 64 * 1024;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export class RegistryTransport {
  readonly timeouts: Timeouts;
  readonly retry: RetryPolicy;
  readonly authenticator: Authenticator;
  private readonly router: HostRouter;
  private readonly insecure: Set<string>;
  private readonly logger: Logger;
  private readonly userAgent: string;
  private readonly maxRedirects: number;
  private readonly random: () => number;

  constructor(options: TransportOptions = {}) {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.retry = resolveRetryPolicy(options.retry);
    this.logger = options.logger ?? noopLogger;
    this.userAgent = options.userAgent ?? 'lazysnap/0.1';
    this.maxRedirects = options.maxRedirects ?? 5;
    this.random = options.random ?? Math.random;
    this.insecure = new Set((options.insecureHosts ?? []).map((h) => h.toLowerCase()));
    this.router = new HostRouter({
      hostsDir: options.hostsDir,
      defaultScheme: (host) => this.schemeFor(host),
      connection: {
        connections: options.connectionsPerOrigin ?? 16,
        connectTimeoutMs: this.timeouts.connectMs,
        headersTimeoutMs: this.timeouts.headersMs,
        bodyTimeoutMs: this.timeouts.bodyMs,
      },
      proxy: options.proxy ?? {},
      logger: this.logger,
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    });
    this.authenticator = new Authenticator({
      credentials: options.credentials,
      http: this.authHttp,
      logger: this.logger,
      tokenTimeoutMs: Math.min(this.timeouts.requestMs, this.timeouts.headersMs + this.timeouts.bodyMs),
    });
  }

  /** `http:` for loopback and configured insecure registries, `https:` for all others. */
  schemeFor(host: string): 'http:' | 'https:' {
    const h = host.toLowerCase();
    if (this.insecure.has(h)) return 'http:';
    const hostname = h.startsWith('[') ? h.slice(0, h.indexOf(']') + 1) : h.split(':', 1)[0]!;
    if (LOOPBACK_HOSTS.has(hostname) || this.insecure.has(hostname)) return 'http:';
    return 'https:';
  }

  /** The endpoints a call needing `capability` goes to, in order (the registry itself last). */
  endpoints(ref: Reference, capability: HostCapability): Promise<RegistryEndpoint[]> {
    return this.router.endpoints(ref.registry, ref.apiHost, capability);
  }

  /**
   * Runs one registry call. The handler sees each accepted response and may
   * read its body; whatever it throws that is transient (network error,
   * short read) makes an idempotent call start over, so a handler that reads
   * the whole body gets retries for free. A mirror that fails passes the
   * call on to the next endpoint at once, without retries (containerd does
   * the same); the last endpoint, the registry itself, gets the retries.
   */
  async execute<T>(req: RegistryRequest, handler: ResponseHandler<T>): Promise<T> {
    const timeoutMs = req.timeoutMs ?? this.timeouts.requestMs;
    const deadline = new Deadline(timeoutMs, req.signal);
    try {
      const capability = req.capability ?? (req.method === 'GET' || req.method === 'HEAD' ? 'pull' : 'push');
      const endpoints = await this.router.endpoints(req.ref.registry, req.ref.apiHost, capability);
      if (endpoints.length === 0) {
        throw new RegistryError(`${req.method} ${req.what} ${req.ref}: no host in the registry's host configuration has the ${capability} capability`, this.errorInit(req));
      }
      for (let i = 0; ; i++) {
        const endpoint = endpoints[i]!;
        const last = i === endpoints.length - 1;
        try {
          return await this.executeOn(endpoint, req, deadline, timeoutMs, handler, last);
        } catch (err) {
          if (last || !(err instanceof RegistryError) || req.signal?.aborted || deadline.timedOut) throw err;
          this.logger.warn(
            { host: endpoint.host, next: endpoints[i + 1]!.host, ref: req.ref.toString(), digest: req.digest, method: req.method, err: err.message },
            'registry host failed, trying the next one',
          );
        }
      }
    } finally {
      deadline.clear();
    }
  }

  private async executeOn<T>(
    endpoint: RegistryEndpoint,
    req: RegistryRequest,
    deadline: Deadline,
    timeoutMs: number,
    handler: ResponseHandler<T>,
    retries: boolean,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.attempt(endpoint, req, deadline, handler);
      } catch (raw) {
        const err = this.classify(raw, req, endpoint, deadline, timeoutMs);
        if (!retries || !shouldRetry(req.method, attempt, err, this.retry)) throw err;
        const retryAfter = err instanceof RegistryError ? err.retryAfterMs : undefined;
        const delay = Math.min(this.retry.maxDelayMs, Math.max(backoffDelay(this.retry, attempt, this.random), retryAfter ?? 0));
        if (deadline.remainingMs() <= delay) throw err;
        this.logger.warn(
          { host: endpoint.host, ref: req.ref.toString(), digest: req.digest, method: req.method, attempt, delayMs: delay, err: (err as Error).message },
          'registry request failed, retrying',
        );
        try {
          await sleep(delay, deadline.signal);
        } catch (abortErr) {
          throw this.classify(abortErr, req, endpoint, deadline, timeoutMs);
        }
      }
    }
  }

  /** execute() with a handler that reads the whole body (at most maxBytes). */
  async fetchBuffer(req: RegistryRequest, maxBytes: number): Promise<{ res: RegistryResponse; data: Buffer }> {
    return this.execute(req, async (res) => ({ res, data: await readBody(res.body, maxBytes, this.errorInit(req, res.url, res.status)) }));
  }

  /** Closes the connection pools lazysnap created (a dispatcher passed in is the caller's). */
  async close(): Promise<void> {
    await this.router.close();
  }

  errorInit(req: RegistryRequest, url?: URL, status?: number): RegistryErrorInit {
    const init: RegistryErrorInit = { ref: req.ref.toString(), method: req.method };
    if (req.digest !== undefined) init.digest = req.digest;
    if (status !== undefined) init.status = status;
    if (url) init.url = redactUrl(url);
    return init;
  }

  private async attempt<T>(endpoint: RegistryEndpoint, req: RegistryRequest, deadline: Deadline, handler: ResponseHandler<T>): Promise<T> {
    const registryOrigin = endpoint.origin;
    let url = endpointUrl(endpoint, req.path);
    let method: HttpMethod = req.method;
    let body = req.body;
    const replayable = body === undefined || typeof body === 'string' || body instanceof Uint8Array;
    const follow = req.followRedirects ?? (method === 'GET' || method === 'HEAD');
    const accept = req.accept ?? ((s: number) => s >= 200 && s <= 299);
    const init = { ...this.errorInit(req), host: endpoint.host };
    // Credentials and token challenges belong to the host that asks for them:
    // the registry's own under its name in references, a mirror's under its host.
    const authHost = endpoint.isServer ? req.ref.registry : endpoint.host;

    let auth = url.origin === registryOrigin
      ? await this.authenticator.authorize(authHost, req.scopes, init, deadline.signal)
      : undefined;
    let authRounds = 0;
    let redirects = 0;

    for (;;) {
      const sameOrigin = url.origin === registryOrigin;
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...(sameOrigin ? endpoint.headers : {}), ...req.headers };
      if (auth !== undefined && sameOrigin) headers.authorization = auth;
      this.logger.debug({ method, url: redactUrl(url), ref: req.ref.toString(), digest: req.digest }, 'registry request');
      const res = await this.send(
        endpoint.dispatcher,
        { origin: url.origin, path: url.pathname + url.search, method, headers, body: body ?? null },
        deadline.signal,
        `${method} ${req.what} ${req.ref}`,
        { ...init, url: redactUrl(url) },
      );
      const status = res.statusCode;

      if (status === 401 && sameOrigin) {
        await discard(res.body);
        const statusInit = { ...init, status, url: redactUrl(url) };
        if (authRounds >= 2 || !replayable) {
          throw new UnauthorizedError(`${method} ${req.what} ${req.ref} was refused`, statusInit);
        }
        const next = await this.authenticator.respond(
          authHost,
          res.headers['www-authenticate'],
          req.scopes,
          auth,
          statusInit,
          deadline.signal,
        );
        if (next === undefined) {
          const why = res.headers['www-authenticate'] ? 'no credentials for its challenge' : 'no WWW-Authenticate challenge';
          throw new UnauthorizedError(`${method} ${req.what} ${req.ref} needs authentication (${why})`, statusInit);
        }
        if (next === auth) {
          // The same credentials or token were just refused; sending them again cannot help.
          throw new UnauthorizedError(`${method} ${req.what} ${req.ref} was refused with the configured credentials`, statusInit);
        }
        auth = next;
        authRounds++;
        continue;
      }

      if (follow && isRedirect(status)) {
        await discard(res.body);
        const location = headerValue(res.headers, 'location');
        if (!location) throw new RegistryError(`${method} ${req.what} ${req.ref}: redirect without Location`, { ...init, status });
        if (++redirects > this.maxRedirects) {
          throw new RegistryError(`${method} ${req.what} ${req.ref}: more than ${this.maxRedirects} redirects`, { ...init, status });
        }
        const next = new URL(location, url);
        if (next.protocol !== 'http:' && next.protocol !== 'https:') {
          throw new RegistryError(`${method} ${req.what} ${req.ref}: redirect to unsupported URL scheme ${next.protocol}`, { ...init, status });
        }
        this.logger.debug({ from: redactUrl(url), to: redactUrl(next), status }, 'registry redirect');
        url = next;
        if (status === 303 && method !== 'HEAD') {
          method = 'GET';
          body = undefined;
        }
        continue;
      }

      if (accept(status)) {
        return await handler({ status, headers: res.headers, body: res.body, url }, deadline.signal);
      }
      throw await statusError(res, req, url, endpoint.host);
    }
  }

  /** Maps whatever an attempt threw onto the typed errors; user aborts pass through as they are. */
  private classify(err: unknown, req: RegistryRequest, endpoint: RegistryEndpoint, deadline: Deadline, timeoutMs: number): unknown {
    if (req.signal?.aborted) return req.signal.reason ?? err;
    const init = { ...this.errorInit(req), host: endpoint.host };
    if (deadline.timedOut) {
      return new RegistryTimeoutError(`${req.method} ${req.what} ${req.ref} did not complete within ${timeoutMs} ms`, { ...init, cause: err });
    }
    if (err instanceof RegistryError) return err;
    const code = errorCode(err);
    if (code === undefined) return err;
    const detail = (err as Error).message || code;
    if (code === 'UND_ERR_CONNECT_TIMEOUT') {
      return new RegistryTimeoutError(`${req.method} ${req.what} ${req.ref}: connect timeout after ${this.timeouts.connectMs} ms`, { ...init, code, cause: err });
    }
    if (code === 'UND_ERR_HEADERS_TIMEOUT') {
      return new RegistryTimeoutError(`${req.method} ${req.what} ${req.ref}: no response headers within ${this.timeouts.headersMs} ms`, { ...init, code, cause: err });
    }
    if (code === 'UND_ERR_BODY_TIMEOUT') {
      return new RegistryTimeoutError(`${req.method} ${req.what} ${req.ref}: response body stalled for ${this.timeouts.bodyMs} ms`, { ...init, code, cause: err });
    }
    const tls = tlsFailure(code);
    if (tls !== undefined) {
      return new RegistryUnreachableError(`${req.method} ${req.what} ${req.ref}: TLS with ${endpoint.host} failed: ${tls} (${detail})`, { ...init, code, cause: err });
    }
    if (NETWORK_CODES.has(code)) {
      // A TLS 1.3 server that wants a client certificate checks it after the
      // handshake and just closes the connection; say what that likely means.
      const hint = code === 'UND_ERR_SOCKET' && endpoint.origin.startsWith('https:') && !endpoint.clientCertificate
        ? ' (a registry that requires a client certificate closes connections without one: see `client` in its hosts.toml)'
        : '';
      return new RegistryUnreachableError(`${req.method} ${req.what} ${req.ref}: cannot reach ${endpoint.host}: ${detail}${hint}`, { ...init, code, cause: err });
    }
    return err;
  }

  /**
   * One HTTP exchange with its own time-to-headers budget. undici's
   * headersTimeout runs on a coarse (about one second) timer wheel, so the
   * budget is enforced here with a precise timer, and undici's stays as a
   * backstop. Connection setup counts against the budget.
   */
  private async send(
    dispatcher: Dispatcher,
    opts: Omit<Dispatcher.RequestOptions, 'signal' | 'headersTimeout' | 'bodyTimeout'>,
    signal: AbortSignal | undefined,
    what: string,
    init: RegistryErrorInit,
  ): Promise<Dispatcher.ResponseData> {
    const ms = this.timeouts.headersMs;
    const timer = new AbortController();
    const handle = setTimeout(
      () => timer.abort(new RegistryTimeoutError(`${what}: no response headers within ${ms} ms`, { ...init, code: 'HEADERS_TIMEOUT' })),
      ms,
    );
    try {
      return await dispatcher.request({
        ...opts,
        signal: signal ? AbortSignal.any([signal, timer.signal]) : timer.signal,
        headersTimeout: ms + 1_000,
        bodyTimeout: this.timeouts.bodyMs,
      });
    } catch (err) {
      // undici rejects with the abort reason; make sure ours is the one seen.
      if (timer.signal.aborted && !signal?.aborted) throw timer.signal.reason;
      throw err;
    } finally {
      clearTimeout(handle);
    }
  }

  /**
   * Token-server HTTP: the pool (and so the TLS settings) of the endpoint on
   * that origin if there is one (registries often serve their own tokens),
   * else the default; retries come from the registry call around it.
   */
  private readonly authHttp: AuthHttp = async ({ url, method, headers, body, signal }) => {
    const res = await this.send(
      this.router.dispatcherForOrigin(url.origin),
      { origin: url.origin, path: url.pathname + url.search, method, headers: { 'user-agent': this.userAgent, ...headers }, body: body ?? null },
      signal,
      `${method} token ${url.origin}${url.pathname}`,
      { url: url.origin + url.pathname },
    );
    const data = await readBody(res.body, 1 << 20, { url: url.origin + url.pathname, status: res.statusCode });
    return { status: res.statusCode, headers: res.headers, text: data.toString('utf8') };
  };
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);
/** OpenSSL's verification codes in the words Go's x509 (and so containerd) uses. */
const TLS_REASONS = new Map([
  ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'certificate signed by unknown authority'],
  ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'certificate signed by unknown authority'],
  ['UNABLE_TO_GET_ISSUER_CERT', 'certificate signed by unknown authority'],
  ['SELF_SIGNED_CERT_IN_CHAIN', 'certificate signed by unknown authority'],
  ['DEPTH_ZERO_SELF_SIGNED_CERT', 'certificate signed by unknown authority'],
  ['CERT_HAS_EXPIRED', 'certificate has expired'],
  ['CERT_NOT_YET_VALID', 'certificate is not yet valid'],
  ['ERR_TLS_CERT_ALTNAME_INVALID', 'certificate is not valid for this host name'],
  ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'the registry requires a client certificate'],
  ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'the registry refused the client certificate'],
  ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'the registry does not trust the client certificate'],
  ['ERR_SSL_WRONG_VERSION_NUMBER', 'the host does not speak TLS (plain HTTP?)'],
]);

function tlsFailure(code: string): string | undefined {
  const reason = TLS_REASONS.get(code);
  if (reason !== undefined) return reason;
  if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code.startsWith('CERT_')) return 'handshake failed';
  return undefined;
}

/** The URL of an API path (`/v2/…`) on an endpoint whose API root may differ; absolute URLs (upload locations) stay. */
function endpointUrl(endpoint: RegistryEndpoint, path: string): URL {
  if (path.startsWith('/v2/') || path === '/v2') return new URL(endpoint.apiRoot + path.slice('/v2'.length), endpoint.origin);
  return new URL(path, `${endpoint.origin}/`);
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Happy-eyeballs connects fail with an AggregateError of per-address errors.
  const inner = (err as { errors?: unknown }).errors;
  if (Array.isArray(inner) && inner.length > 0) return errorCode(inner[0]);
  const cause = (err as { cause?: unknown }).cause;
  return cause !== undefined && cause !== err ? errorCode(cause) : undefined;
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v[0] : v;
}

/** Pre-signed storage URLs carry credentials in the query; logs and errors get the path only. */
export function redactUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

/** Reads a body fully, refusing more than maxBytes so a hostile server cannot exhaust memory. */
export async function readBody(body: Readable, maxBytes: number, init: RegistryErrorInit = {}): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      body.destroy();
      throw new InvalidContentError(`response body larger than ${maxBytes} bytes`, init);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** Drops a body we do not need; small ones are drained so the connection stays reusable. */
export async function discard(body: Dispatcher.ResponseData['body']): Promise<void> {
  try {
    await body.dump({ limit: MAX_ERROR_BODY });
  } catch {
    // The connection is gone; undici will open a new one.
  }
}

async function statusError(res: Dispatcher.ResponseData, req: RegistryRequest, url: URL, host: string): Promise<RegistryError> {
  const status = res.statusCode;
  let errors: RegistryErrorDetail[] = [];
  if (req.method !== 'HEAD') {
    try {
      const text = (await readBody(res.body, MAX_ERROR_BODY)).toString('utf8');
      errors = parseErrorBody(text);
    } catch {
      // An unreadable error body is no reason to hide the status.
    }
  } else {
    await discard(res.body);
  }
  const init: RegistryErrorInit = {
    ref: req.ref.toString(),
    method: req.method,
    status,
    errors,
    url: redactUrl(url),
    host,
  };
  if (req.digest !== undefined) init.digest = req.digest;
  if (isRetryableStatus(status)) {
    const ra = parseRetryAfter(res.headers['retry-after']);
    if (ra !== undefined) init.retryAfterMs = ra;
  }
  const msg = `${req.method} ${req.what} ${req.ref} failed`;
  if (status === 404) return new NotFoundError(`${req.what} not found: ${req.ref}`, init);
  if (status === 401 || status === 403) return new UnauthorizedError(`${msg}: access denied`, init);
  return new RegistryError(msg, init);
}

/** The distribution spec's `{"errors":[{"code","message","detail"}]}`. */
export function parseErrorBody(text: string): RegistryErrorDetail[] {
  try {
    const doc = JSON.parse(text) as { errors?: unknown };
    if (!Array.isArray(doc.errors)) return [];
    return doc.errors
      .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string')
      .map((e) => {
        const d: RegistryErrorDetail = { code: e.code as string };
        if (typeof e.message === 'string') d.message = e.message;
        if (e.detail !== undefined) d.detail = e.detail;
        return d;
      });
  } catch {
    return [];
  }
}

/**
 * A per-call deadline combined with the caller's signal. Which of the two
 * fired decides between a RegistryTimeoutError and passing the caller's
 * abort reason through.
 */
class Deadline {
  readonly signal: AbortSignal;
  timedOut = false;
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private readonly endsAt: number;

  constructor(ms: number, user: AbortSignal | undefined) {
    this.endsAt = Date.now() + ms;
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort(new RegistryTimeoutError(`deadline of ${ms} ms passed`));
    }, ms);
    this.signal = user ? AbortSignal.any([user, this.controller.signal]) : this.controller.signal;
  }

  remainingMs(): number {
    return this.endsAt - Date.now();
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}
