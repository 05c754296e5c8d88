import { Kind, type Mount } from './types.js';

export interface SnapshotLayout {
  /** The directory holding a snapshot's contents (the overlay upperdir of an active snapshot). */
  upperPath(id: number): string;
  workPath(id: number): string;
}

export interface OverlayFeatures {
  /** The kernel has overlay's `index` option: pass index=off as containerd does. */
  indexOff: boolean;
  /** Mount with `userxattr` (rootless kernels). */
  userxattr: boolean;
}

/**
 * The mounts of a snapshot, exactly as containerd's overlayfs snapshotter
 * builds them: a bind mount when there is nothing to stack, otherwise
 * overlay with the parent chain as lowerdirs, nearest parent first.
 */
export function buildMounts(kind: Kind, id: number, parentIds: readonly number[], layout: SnapshotLayout, features: OverlayFeatures): Mount[] {
  if (parentIds.length === 0) {
    return [{ type: 'bind', source: layout.upperPath(id), options: [kind === Kind.View ? 'ro' : 'rw', 'rbind'] }];
  }
  if (kind !== Kind.Active && parentIds.length === 1) {
    return [{ type: 'bind', source: layout.upperPath(parentIds[0] as number), options: ['ro', 'rbind'] }];
  }
  const options: string[] = [];
  if (features.indexOff) options.push('index=off');
  if (features.userxattr) options.push('userxattr');
  if (kind === Kind.Active) {
    options.push(`workdir=${layout.workPath(id)}`, `upperdir=${layout.upperPath(id)}`);
  }
  options.push(`lowerdir=${parentIds.map((p) => layout.upperPath(p)).join(':')}`);
  return [{ type: 'overlay', source: 'overlay', options }];
}
