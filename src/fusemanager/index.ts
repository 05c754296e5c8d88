/**
 * src/fusemanager: the FUSE mounts of lazy layers in a process of their own
 * (`lazysnap fuse-manager`), and the daemon's way to them over a root-only
 * control socket.
 */
export { FuseManagerServer, type ManagerBackend } from './manager-server.js';
export { ManagedMounter, type ManagedMounterOptions, type StartedManager } from './managed-mounter.js';
export { startManagerProcess, type ManagerLaunch } from './start-manager.js';
export { FUSE_MANAGER_PROTOCOL, FuseManagerCallError, FuseManagerUnavailableError, managerDirectory, managerSocketPath, type ManagerHello, type ManagerInfo } from './protocol.js';
export { registerManagerMetrics } from './manager-metrics.js';
export { forwardingKeychain } from './forwarding-keychain.js';
