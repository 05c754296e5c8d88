// Public surface of the OCI distribution client.
export { RegistryClient, type RegistryClientOptions, type RefLike } from './client.js';
export {
  Reference,
  parseReference,
  toReference,
  DOCKER_HUB_DOMAIN,
  DOCKER_HUB_API_HOST,
  DEFAULT_TAG,
  type ParseReferenceOptions,
} from './reference.js';
export {
  RegistryError,
  NotFoundError,
  UnauthorizedError,
  RegistryUnreachableError,
  RegistryTimeoutError,
  DigestMismatchError,
  ShortReadError,
  InvalidReferenceError,
  UnsupportedMediaTypeError,
  NoMatchingPlatformError,
  InvalidContentError,
  isTransientError,
  isRetryableStatus,
  type RegistryErrorDetail,
  type RegistryErrorInit,
} from './errors.js';
export {
  MediaType,
  MANIFEST_ACCEPT,
  isIndexMediaType,
  isManifestMediaType,
  baseMediaType,
  type KnownMediaType,
} from './media-types.js';
export {
  parseManifestDocument,
  parseImageConfig,
  type Descriptor,
  type ImageManifest,
  type ImageIndex,
  type ImageConfig,
  type ManifestDocument,
} from './manifest.js';
export {
  DEFAULT_PLATFORM,
  parsePlatform,
  formatPlatform,
  normalizePlatform,
  platformMatches,
  platformRank,
  selectPlatformManifest,
  type Platform,
} from './platform.js';
export { parseWwwAuthenticate, type AuthChallenge } from './challenge.js';
export { Authenticator, ScopeSet, type AuthHttp, type AuthenticatorOptions } from './auth.js';
export {
  DockerConfigCredentials,
  StaticCredentials,
  ChainedCredentials,
  parseDockerConfig,
  normalizeRegistryHost,
  defaultDockerConfigPath,
  type Credentials,
  type CredentialsSource,
  type DockerConfig,
  type DockerConfigCredentialsOptions,
} from './credentials.js';
export {
  DEFAULT_RETRY_POLICY,
  backoffDelay,
  resolveRetryPolicy,
  shouldRetry,
  isIdempotentMethod,
  parseRetryAfter,
  type RetryPolicy,
} from './retry.js';
export { DEFAULT_TIMEOUTS, RegistryTransport, type Timeouts, type TransportOptions } from './transport.js';
export { digestOf, parseDigest, isDigest, verifyDigest, VerifyingStream } from './digest.js';
export { parseContentRange, type BlobStream, type BlobTail, type CallOptions, type FetchBlobOptions } from './blobs.js';
export { MAX_MANIFEST_BYTES, type FetchedManifest, type ResolvedImage, type FetchedConfig } from './resolve.js';
export { type BlobSource, type PushBlobOptions, type PushedBlob, type PushManifestOptions } from './push.js';
export { noopLogger, type Logger } from './logger.js';
export { HostsConfigError } from './errors.js';
export { parseHostsFile, type HostCapability, type HostSpec, type HostsFile } from './hosts/hosts-file.js';
export { HostsDirectory, hostDirectoryCandidates } from './hosts/hosts-directory.js';
export { HostRouter, type RegistryEndpoint } from './hosts/host-router.js';
export { proxySettingsFromEnv, redactProxy, usesProxy, type ProxySettings } from './hosts/proxy.js';
