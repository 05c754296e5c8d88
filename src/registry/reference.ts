// Image references as docker and containerd spell them. The grammar is the
// one of distribution's `reference` package (ParseNormalizedNamed): a first
// path component is a registry host only if it looks like one (has a dot or
// a colon, is `localhost`, or has upper-case letters), otherwise the image
// lives on Docker Hub, and one-component Hub names live under `library/`.
import { InvalidReferenceError } from './errors.js';
import { parseDigest } from './digest.js';

export const DOCKER_HUB_DOMAIN = 'docker.io';
/** Docker Hub's name is not the host its API is served from. */
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
export const DEFAULT_TAG = 'latest';

const NAME_TOTAL_LENGTH_MAX = 255;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
// IPv6 in brackets as in URLs; zone identifiers (%eth0) are not allowed, as in distribution.
const IPV6 = '\\[[a-fA-F0-9:]+\\]';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_NAME}|${IPV6})(?::[0-9]+)?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_GRAMMAR_RE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const BARE_IDENTIFIER_RE = /^[a-f0-9]{64}$/;

export class Reference {
  /** Registry as named in references: `docker.io`, `ghcr.io`, `127.0.0.1:5000`, `[::1]:5000`. */
  readonly registry: string;
  /** Repository path inside the registry, e.g. `library/busybox`. */
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: string | undefined;

  constructor(registry: string, repository: string, tag?: string, digest?: string) {
    this.registry = registry;
    this.repository = repository;
    this.tag = tag;
    this.digest = digest;
  }

  /** `registry/repository`, e.g. `docker.io/library/busybox`. */
  get name(): string {
    return `${this.registry}/${this.repository}`;
  }

  /** host[:port] to send API requests to. */
  get apiHost(): string {
    return this.registry === DOCKER_HUB_DOMAIN ? DOCKER_HUB_API_HOST : this.registry;
  }

  /** What goes after /manifests/: the digest when there is one (it pins content), else the tag. */
  get object(): string {
    return this.digest ?? this.tag ?? DEFAULT_TAG;
  }

  withTag(tag: string): Reference {
    if (!TAG_RE.test(tag)) throw new InvalidReferenceError(`${this.name}:${tag}`, 'invalid tag format');
    return new Reference(this.registry, this.repository, tag, undefined);
  }

  withDigest(digest: string): Reference {
    if (!parseDigest(digest)) throw new InvalidReferenceError(`${this.name}@${digest}`, 'invalid or unsupported digest');
    return new Reference(this.registry, this.repository, this.tag, digest);
  }

  /** Same registry, another repository (used for cross-repository mounts). */
  withRepository(repository: string): Reference {
    return parseReference(`${this.registry}/${repository}`);
  }

  /** Fully qualified form, e.g. `docker.io/library/busybox:latest`. */
  toString(): string {
    let s = this.name;
    if (this.tag !== undefined) s += `:${this.tag}`;
    if (this.digest !== undefined) s += `@${this.digest}`;
    return s;
  }

  /** The short form docker prints: `busybox:latest`, `user/app@sha256:...`. */
  familiar(): string {
    let name = this.name;
    if (this.registry === DOCKER_HUB_DOMAIN) {
      name = this.repository.startsWith('library/') && this.repository.split('/').length === 2
        ? this.repository.slice('library/'.length)
        : this.repository;
    }
    let s = name;
    if (this.tag !== undefined) s += `:${this.tag}`;
    if (this.digest !== undefined) s += `@${this.digest}`;
    return s;
  }
}

export interface ParseReferenceOptions {
  /** Tag added when the reference has neither tag nor digest; default `latest`. Empty string adds none. */
  defaultTag?: string;
}

export function parseReference(input: string, options: ParseReferenceOptions = {}): Reference {
  const fail = (reason: string): never => {
    throw new InvalidReferenceError(input, reason);
  };
  if (typeof input !== 'string' || input.length === 0) fail('empty reference');
  if (input !== input.trim() || /\s/.test(input)) fail('contains whitespace');
  if (BARE_IDENTIFIER_RE.test(input)) {
    fail('cannot be a bare 64-character hexadecimal string (ambiguous with an image ID)');
  }

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_GRAMMAR_RE.test(digest)) fail('invalid digest format');
    if (!parseDigest(digest)) fail(`unsupported digest ${digest} (want sha256:<64 hex> or sha512:<128 hex>)`);
  }

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) fail('invalid tag format');
  }
  if (rest.length === 0) fail('missing repository name');

  let registry: string;
  let path: string;
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  const looksLikeHost = slash !== -1 && (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first);
  if (looksLikeHost) {
    registry = first;
    path = rest.slice(slash + 1);
    if (!DOMAIN_RE.test(registry)) fail(`invalid registry host ${JSON.stringify(registry)}`);
    if (registry === 'index.docker.io') registry = DOCKER_HUB_DOMAIN;
  } else {
    registry = DOCKER_HUB_DOMAIN;
    path = rest;
  }
  if (registry === DOCKER_HUB_DOMAIN && !path.includes('/')) path = `library/${path}`;

  if (path.length === 0) fail('missing repository name');
  if (/[A-Z]/.test(path)) fail('repository name must be lowercase');
  for (const component of path.split('/')) {
    if (!PATH_COMPONENT_RE.test(component)) fail(`invalid repository path component ${JSON.stringify(component)}`);
  }
  if (registry.length + 1 + path.length > NAME_TOTAL_LENGTH_MAX) {
    fail(`repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }

  if (tag === undefined && digest === undefined) {
    const defaultTag = options.defaultTag ?? DEFAULT_TAG;
    if (defaultTag !== '') tag = defaultTag;
  }
  return new Reference(registry, path, tag, digest);
}

/** Accepts either form so hot paths (range reads) can skip re-parsing. */
export function toReference(ref: string | Reference): Reference {
  return typeof ref === 'string' ? parseReference(ref) : ref;
}
