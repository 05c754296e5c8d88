import { access } from 'node:fs/promises';
import type { OverlayFeatures } from './mounts.js';

/**
 * The overlay options containerd's overlayfs snapshotter adds for this
 * kernel: index=off when the kernel knows the index feature (so that
 * lowerdirs can be shared between mounts). userxattr is only for rootless
 * use, which lazysnap (running as root) never needs.
 */
export async function detectOverlayFeatures(): Promise<OverlayFeatures> {
  let indexOff = false;
  try {
    await access('/sys/module/overlay/parameters/index');
    indexOff = true;
  } catch {
    indexOff = false;
  }
  return { indexOff, userxattr: false };
}
