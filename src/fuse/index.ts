// src/fuse: a read-only FUSE filesystem over a layer, and the mount lifecycle.
export type { FsNode, LayerContent, NodeType } from './types.js';
export type { FuseLogger } from './logger.js';
export { mountLayer } from './mount.js';
export { MountpointBusyError } from './errors.js';
export type { MountLayerOptions, MountedLayer } from './mount.js';
export { cleanupStaleMounts } from './stale-mounts.js';
export { isMounted } from './mountinfo.js';
export { createOperations } from './operations.js';
export type { FuseOperationObserver, LayerOperations } from './operations.js';
export { fileMode, makedev } from './attributes.js';
