// Registry authentication: the docker token protocol (Bearer challenges
// answered by a token server, anonymously or with credentials) and Basic.
//
// The authenticator remembers, per registry, which challenge it last saw, so
// that after the first 401 every further request carries a token up front
// instead of paying a 401 round trip each time. Tokens are cached per
// (realm, service, scope set) until shortly before they expire, and one
// token fetch serves all concurrent requests that need it.
import type { IncomingHttpHeaders } from 'node:http';
import { parseWwwAuthenticate, type AuthChallenge } from './challenge.js';
import type { Credentials, CredentialsScope, CredentialsSource } from './credentials.js';
import { InvalidContentError, RegistryError, RegistryTimeoutError, UnauthorizedError, type RegistryErrorInit } from './errors.js';
import { noopLogger, type Logger } from './logger.js';

/** Minimal HTTP the authenticator needs; the transport supplies it (same agent, timeouts, retries). */
export type AuthHttp = (req: {
  url: URL;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}) => Promise<{ status: number; headers: IncomingHttpHeaders; text: string }>;

/**
 * A set of scopes such as `repository:library/busybox:pull,push`, merged by
 * resource, so `pull` + `push` on one repository is one scope string, and a
 * cached token for `pull,push` serves a request that needs only `pull`.
 */
export class ScopeSet {
  private readonly resources = new Map<string, Set<string>>();

  constructor(scopes: Iterable<string> = []) {
    for (const s of scopes) this.add(s);
  }

  static repository(repository: string, actions: readonly string[]): string {
    return `repository:${repository}:${actions.join(',')}`;
  }

  /** Adds `type:name:actions`; the name may itself contain colons (registry:catalog:*). */
  add(scope: string): this {
    for (const one of scope.split(' ')) {
      if (one === '') continue;
      const last = one.lastIndexOf(':');
      if (last <= 0) continue;
      const resource = one.slice(0, last);
      const actions = one.slice(last + 1).split(',').filter((a) => a !== '');
      let set = this.resources.get(resource);
      if (!set) this.resources.set(resource, (set = new Set()));
      for (const a of actions) set.add(a);
    }
    return this;
  }

  covers(other: ScopeSet): boolean {
    for (const [resource, actions] of other.resources) {
      const mine = this.resources.get(resource);
      if (!mine) return false;
      if (mine.has('*')) continue;
      for (const a of actions) if (!mine.has(a)) return false;
    }
    return true;
  }

  /** The repositories named by `repository:` scopes, in the order they were added. */
  repositories(): string[] {
    const out: string[] = [];
    for (const resource of this.resources.keys()) {
      if (resource.startsWith('repository:')) out.push(resource.slice('repository:'.length));
    }
    return out;
  }

  /** Canonical scope strings, sorted, one per resource. */
  toArray(): string[] {
    return [...this.resources.entries()]
      .map(([resource, actions]) => `${resource}:${[...actions].sort().join(',')}`)
      .sort();
  }

  get size(): number {
    return this.resources.size;
  }
}

interface BearerChallenge {
  scheme: 'bearer';
  realm: string;
  service: string | undefined;
  /** Scope the registry asked for in the challenge, if any. */
  scope: string | undefined;
}
interface BasicChallenge {
  scheme: 'basic';
}
type KnownChallenge = BearerChallenge | BasicChallenge;

interface CachedToken {
  scopes: ScopeSet;
  token: string;
  expiresAt: number;
}

export interface AuthenticatorOptions {
  credentials?: CredentialsSource | undefined;
  http: AuthHttp;
  logger?: Logger | undefined;
  /** Clock, for tests. */
  now?: () => number;
  /** client_id sent with OAuth2 refresh-token requests. */
  clientId?: string;
  /** Deadline for one token request; default 30 s. */
  tokenTimeoutMs?: number;
}

/** Tokens are dropped this long before they expire (at most a fifth of their life). */
const EXPIRY_MARGIN_MS = 30_000;
/** The token spec's default lifetime when the server does not say. */
const DEFAULT_TOKEN_LIFETIME_S = 60;

export class Authenticator {
  private readonly credentials: CredentialsSource | undefined;
  private readonly http: AuthHttp;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly clientId: string;
  private readonly tokenTimeoutMs: number;
  private readonly challenges = new Map<string, KnownChallenge>();
  private readonly tokens = new Map<string, CachedToken[]>();
  private readonly inflight = new Map<string, Promise<CachedToken>>();

  constructor(options: AuthenticatorOptions) {
    this.credentials = options.credentials;
    this.http = options.http;
    this.logger = options.logger ?? noopLogger;
    this.now = options.now ?? Date.now;
    this.clientId = options.clientId ?? 'lazysnap';
    this.tokenTimeoutMs = options.tokenTimeoutMs ?? 30_000;
  }

  /**
   * The Authorization header to send before any 401, based on the challenge
   * this registry sent last time. Undefined when we have not seen one (the
   * registry may need no auth at all).
   */
  async authorize(registry: string, scopes: readonly string[], init: RegistryErrorInit, signal?: AbortSignal): Promise<string | undefined> {
    const challenge = this.challenges.get(registry);
    if (!challenge) return undefined;
    return this.answer(registry, challenge, new ScopeSet(scopes), init, false, signal);
  }

  /**
   * Answers a 401. `previous` is the Authorization header that was refused,
   * if any: a refused token is evicted and a fresh one fetched, so an expired
   * or revoked token costs one extra round trip, not a failure. Returns
   * undefined when the challenge cannot be answered (unknown scheme, Basic
   * without credentials).
   */
  async respond(
    registry: string,
    wwwAuthenticate: string | string[] | undefined,
    scopes: readonly string[],
    previous: string | undefined,
    init: RegistryErrorInit,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const challenge = pickChallenge(parseWwwAuthenticate(wwwAuthenticate));
    if (!challenge) return undefined;
    this.challenges.set(registry, challenge);
    const wanted = new ScopeSet(scopes);
    if (challenge.scheme === 'bearer' && challenge.scope) wanted.add(challenge.scope);
    if (previous?.startsWith('Bearer ')) this.evict(previous.slice('Bearer '.length));
    return this.answer(registry, challenge, wanted, init, previous !== undefined, signal);
  }

  /** Forgets cached tokens and challenges (for tests and credential changes). */
  reset(): void {
    this.challenges.clear();
    this.tokens.clear();
  }

  private async answer(
    registry: string,
    challenge: KnownChallenge,
    scopes: ScopeSet,
    init: RegistryErrorInit,
    fresh: boolean,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const creds = await this.credentials?.lookup(registry, signal, credentialsScope(scopes, init));
    if (challenge.scheme === 'basic') {
      if (!creds?.username) return undefined;
      return `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
    }
    if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
    const token = await this.token(challenge, scopes, creds, init, fresh, signal);
    return `Bearer ${token.token}`;
  }

  private async token(
    challenge: BearerChallenge,
    scopes: ScopeSet,
    creds: Credentials | undefined,
    init: RegistryErrorInit,
    fresh: boolean,
    signal?: AbortSignal,
  ): Promise<CachedToken> {
    const cacheKey = `${challenge.realm}\n${challenge.service ?? ''}\n${creds?.username ?? ''}`;
    if (!fresh) {
      const now = this.now();
      const list = this.tokens.get(cacheKey) ?? [];
      const live = list.filter((t) => t.expiresAt > now);
      if (live.length !== list.length) this.tokens.set(cacheKey, live);
      const hit = live.find((t) => t.scopes.covers(scopes));
      if (hit) return hit;
    }
    const flightKey = `${cacheKey}\n${scopes.toArray().join(' ')}`;
    const pending = this.inflight.get(flightKey);
    if (pending) return raceAbort(pending, signal);
    // The fetch is shared by every caller that arrives while it runs, so no
    // single caller's AbortSignal may cancel it; each caller stops waiting on
    // its own signal instead. The transport's timeouts still bound it.
    const p = this.fetchToken(challenge, scopes, creds, init, AbortSignal.timeout(this.tokenTimeoutMs))
      .then((t) => {
        const list = this.tokens.get(cacheKey) ?? [];
        list.push(t);
        this.tokens.set(cacheKey, list);
        return t;
      })
      .finally(() => this.inflight.delete(flightKey));
    this.inflight.set(flightKey, p);
    return raceAbort(p, signal);
  }

  private evict(token: string): void {
    for (const [key, list] of this.tokens) {
      const kept = list.filter((t) => t.token !== token);
      if (kept.length !== list.length) this.tokens.set(key, kept);
    }
  }

  private async fetchToken(
    challenge: BearerChallenge,
    scopes: ScopeSet,
    creds: Credentials | undefined,
    init: RegistryErrorInit,
    signal?: AbortSignal,
  ): Promise<CachedToken> {
    let realm: URL;
    try {
      realm = new URL(challenge.realm);
    } catch {
      throw new InvalidContentError(`token realm ${JSON.stringify(challenge.realm)} is not a URL`, init);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new InvalidContentError(`token realm ${challenge.realm} is not http(s)`, init);
    }
    const scopeList = scopes.toArray();
    const started = this.now();
    let res: Awaited<ReturnType<AuthHttp>>;
    try {
      res = await this.requestToken(realm, challenge, scopeList, creds, signal);
    } catch (err) {
      if (signal?.aborted && !(err instanceof RegistryError)) {
        throw new RegistryTimeoutError(`token request to ${realm.origin}${realm.pathname} did not complete within ${this.tokenTimeoutMs} ms`, {
          ...init,
          url: realm.origin + realm.pathname,
          cause: err,
        });
      }
      throw err;
    }
    const realmInit = { ...init, status: res.status, url: realm.origin + realm.pathname };
    if (res.status === 401 || res.status === 403) {
      throw new UnauthorizedError(
        `token server ${realm.origin}${realm.pathname} refused ${creds ? 'the configured credentials' : 'an anonymous token'} for ${scopeList.join(' ') || 'no scope'}`,
        realmInit,
      );
    }
    if (res.status < 200 || res.status > 299) {
      throw new RegistryError(`token request to ${realm.origin}${realm.pathname} failed`, realmInit);
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(res.text) as typeof body;
    } catch (err) {
      throw new InvalidContentError(`token response from ${realm.origin}${realm.pathname} is not JSON`, { ...realmInit, cause: err });
    }
    const token = typeof body.token === 'string' && body.token !== '' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new InvalidContentError(`token response from ${realm.origin}${realm.pathname} has no token`, realmInit);
    }
    const lifetimeS = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_LIFETIME_S;
    const lifetimeMs = lifetimeS * 1000;
    // Expiry counted from when we asked, not from the server's issued_at, so a
    // skewed server clock cannot make us keep a dead token.
    const expiresAt = started + lifetimeMs - Math.min(EXPIRY_MARGIN_MS, lifetimeMs / 5);
    this.logger.debug({ realm: realm.origin + realm.pathname, service: challenge.service, scopes: scopeList, lifetimeS }, 'registry token fetched');
    return { scopes: new ScopeSet(scopeList), token, expiresAt };
  }

  /** GET with Basic credentials (or none), or the OAuth2 refresh-token grant for identity tokens. */
  private requestToken(
    realm: URL,
    challenge: BearerChallenge,
    scopeList: string[],
    creds: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Awaited<ReturnType<AuthHttp>>> {
    if (creds?.identityToken) {
      // OAuth2 refresh-token grant, what `docker login` leaves for SSO accounts.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: this.clientId });
      if (challenge.service) form.set('service', challenge.service);
      if (scopeList.length > 0) form.set('scope', scopeList.join(' '));
      return this.http({
        url: realm,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        ...(signal ? { signal } : {}),
      });
    } else {
      const url = new URL(realm);
      if (challenge.service) url.searchParams.set('service', challenge.service);
      for (const s of scopeList) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (creds?.username) {
        url.searchParams.set('account', creds.username);
        headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
      }
      return this.http({ url, method: 'GET', headers, ...(signal ? { signal } : {}) });
    }
  }
}

/**
 * Which repository (and image) a request is for, taken from its token scope,
 * so per-image sources such as the CRI keychain can answer. A request that
 * spans several repositories (a push mounting a blob from another) names
 * none: per-image credentials must not be stretched over two repositories.
 */
function credentialsScope(scopes: ScopeSet, init: RegistryErrorInit): CredentialsScope {
  const repositories = scopes.repositories();
  if (repositories.length !== 1) return {};
  const scope: CredentialsScope = { repository: repositories[0] as string };
  if (init.ref !== undefined) scope.ref = init.ref;
  return scope;
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Bearer beats Basic when a registry offers both; anything else is ignored. */
function pickChallenge(challenges: AuthChallenge[]): KnownChallenge | undefined {
  const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
  if (bearer) {
    return { scheme: 'bearer', realm: bearer.params.realm!, service: bearer.params.service, scope: bearer.params.scope };
  }
  if (challenges.some((c) => c.scheme === 'basic')) return { scheme: 'basic' };
  return undefined;
}
