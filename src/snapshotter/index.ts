export { Snapshotter, type SnapshotterOptions } from './snapshotter.js';
export { MetadataStore, type LockHoldObserver } from './metadata-store.js';
export { SnapshotterMetrics } from './metrics.js';
export { createSnapshotsService } from './grpc/service.js';
export { SnapshotsServer } from './grpc/server.js';
export { prepareSocketPath } from './grpc/unix-socket.js';
export { detectOverlayFeatures } from './overlay-features.js';
export * from './errors.js';
export * from './types.js';
