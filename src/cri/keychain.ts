// The CRI keychain: the registry credentials kubelet sent with a CRI
// PullImage (from the pod's imagePullSecrets), kept in memory for the layers
// of that image. containerd uses them for its own pull and never passes them
// to a snapshotter, so without this a private image's layers could only be
// downloaded, never served lazily.
//
// Credentials are kept per image reference and found by reference or by
// repository (a layer read knows its repository from the token scope). They
// are never written to disk, and never appear in a log line or an error:
// entries render as `[redacted]` however they are printed.
import { inspect } from 'node:util';
import { LRUCache } from 'lru-cache';
import { normalizeRegistryHost, type Credentials, type CredentialsScope, type CredentialsSource } from '../registry/credentials.js';
import { parseReference } from '../registry/reference.js';
import { authConfigCredentials, type AuthConfig } from './auth-config.js';

/** Images whose credentials are kept at once; the least recently used is forgotten first. */
export const DEFAULT_KEYCHAIN_MAX_IMAGES = 1024;
/**
 * Credentials not used for this long are forgotten. Every registry request
 * for the image renews them, and the background fetch has long since fetched
 * a running container's layers whole by then, so only idle secrets expire.
 */
export const DEFAULT_KEYCHAIN_IDLE_MS = 24 * 60 * 60 * 1000;

export interface CriKeychainOptions {
  maxImages?: number;
  idleMs?: number;
  /** Milliseconds clock, for tests. */
  now?: () => number;
}

/** What remember() did with a PullImage's credentials (never the credentials themselves). */
export type RememberOutcome =
  /** Kept for the image. */
  | 'kept'
  /** The pull carried none (a public image, or credentials on the node): any earlier ones for the image are forgotten. */
  | 'none'
  /** `server_address` names another registry than the image's: not used, as containerd would not use them either. */
  | 'other-registry'
  /** The `auth` field is not base64 of `user:password`. */
  | 'malformed';

/** One image's credentials; prints without them. */
class KeychainEntry {
  constructor(
    readonly ref: string,
    readonly repositoryKey: string,
    readonly credentials: Credentials,
  ) {}

  toJSON(): Record<string, string> {
    return { ref: this.ref, credentials: '[redacted]' };
  }

  [inspect.custom](): string {
    return `KeychainEntry { ref: ${this.ref}, credentials: [redacted] }`;
  }
}

export class CriKeychain implements CredentialsSource {
  private readonly byRef: LRUCache<string, KeychainEntry>;
  /** `host/repository` → refs with credentials, most recently pulled last. */
  private readonly refsOfRepository = new Map<string, string[]>();

  constructor(options: CriKeychainOptions = {}) {
    const now = options.now;
    this.byRef = new LRUCache<string, KeychainEntry>({
      max: options.maxImages ?? DEFAULT_KEYCHAIN_MAX_IMAGES,
      ttl: options.idleMs ?? DEFAULT_KEYCHAIN_IDLE_MS,
      updateAgeOnGet: true,
      // lru-cache caches its clock for ttlResolution ms; an injected clock is read every time.
      ...(now ? { perf: { now }, ttlResolution: 0 } : {}),
      dispose: (entry, ref) => this.unindex(entry.repositoryKey, ref),
    });
  }

  /**
   * Keeps the credentials of a PullImage for its image, replacing earlier
   * ones. Throws InvalidReferenceError when `image` is not a reference.
   */
  remember(image: string, auth: AuthConfig | undefined): RememberOutcome {
    const ref = parseReference(image);
    const key = ref.toString();
    const host = normalizeRegistryHost(ref.registry);
    const found = auth ? authConfigCredentials(auth) : undefined;
    if (found === undefined || found === 'malformed' || (found.serverHost !== undefined && found.serverHost !== host)) {
      this.byRef.delete(key);
      if (found === undefined) return 'none';
      return found === 'malformed' ? 'malformed' : 'other-registry';
    }
    const entry = new KeychainEntry(key, `${host}/${ref.repository}`, found.credentials);
    this.byRef.set(key, entry);
    this.index(entry.repositoryKey, key);
    return 'kept';
  }

  /** Forgets an image's credentials (RemoveImage). False when `image` is not a reference or nothing was kept. */
  forget(image: string): boolean {
    let key: string;
    try {
      key = parseReference(image).toString();
    } catch {
      // Kubelet removes images by ID (sha256:…), which names no credentials.
      return false;
    }
    return this.byRef.delete(key);
  }

  /** Credentials for the image the request serves, else for the most recently pulled image of its repository. */
  async lookup(host: string, _signal?: AbortSignal, scope?: CredentialsScope): Promise<Credentials | undefined> {
    if (scope?.repository === undefined) return undefined;
    const repositoryKey = `${normalizeRegistryHost(host)}/${scope.repository}`;
    const exact = scope.ref !== undefined ? this.byRef.get(scope.ref) : undefined;
    if (exact && exact.repositoryKey === repositoryKey) return exact.credentials;
    const refs = this.refsOfRepository.get(repositoryKey);
    for (let i = (refs?.length ?? 0) - 1; i >= 0; i--) {
      // get() drops an expired entry, and dispose() takes it out of this list.
      const entry = this.byRef.get((refs as string[])[i] as string);
      if (entry) return entry.credentials;
    }
    return undefined;
  }

  /** Images with credentials kept (expired ones may count until they are next looked at). */
  get size(): number {
    return this.byRef.size;
  }

  toJSON(): Record<string, unknown> {
    return { images: this.byRef.size };
  }

  [inspect.custom](): string {
    return `CriKeychain { images: ${this.byRef.size} }`;
  }

  private index(repositoryKey: string, ref: string): void {
    const refs = (this.refsOfRepository.get(repositoryKey) ?? []).filter((r) => r !== ref);
    refs.push(ref);
    this.refsOfRepository.set(repositoryKey, refs);
  }

  private unindex(repositoryKey: string, ref: string): void {
    const refs = this.refsOfRepository.get(repositoryKey);
    if (!refs) return;
    const kept = refs.filter((r) => r !== ref);
    if (kept.length > 0) this.refsOfRepository.set(repositoryKey, kept);
    else this.refsOfRepository.delete(repositoryKey);
  }
}
