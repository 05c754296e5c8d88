// Public surface of the CRI keychain: kubelet's pull secrets for lazy layers.
export { CriKeychain, DEFAULT_KEYCHAIN_IDLE_MS, DEFAULT_KEYCHAIN_MAX_IMAGES, type CriKeychainOptions, type RememberOutcome } from './keychain.js';
export { ImageServiceProxy, imageServiceDefinition, IMAGE_SERVICE, IMAGE_SERVICE_METHODS, type CredentialsKeeper, type ImageServiceMethod, type ImageServiceProxyOptions } from './image-service-proxy.js';
export { authConfigCredentials, type AuthConfig, type AuthConfigCredentials } from './auth-config.js';
