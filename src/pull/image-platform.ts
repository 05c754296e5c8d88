/**
 * An index is matched to the wanted platform by its entries; a lone manifest
 * says its platform only in its config. containerd checks the config too and
 * refuses to run an image for another platform, so a pull (or convert) must
 * refuse it at once rather than record an image that cannot run.
 */
// The registry's leaf modules, not its index: the pull path must not load undici for this.
import { NoMatchingPlatformError } from '../registry/errors.js';
import type { ImageConfig } from '../registry/manifest.js';
import { formatPlatform, normalizePlatform, platformMatches, type Platform } from '../registry/platform.js';

export interface PlatformCheckInput {
  ref: string;
  /** The manifest's digest, for the message. */
  digest: string;
  wanted: Platform;
  config: ImageConfig;
}

/** Throws NoMatchingPlatformError when the config names a platform that cannot serve `wanted`. */
export function assertImagePlatform(input: PlatformCheckInput): void {
  const { os, architecture, variant } = input.config;
  // A config without a platform (hand-made test images, some artifacts) has nothing to compare.
  if (!os || !architecture) return;
  const have = normalizePlatform(variant ? { os, architecture, variant } : { os, architecture });
  if (platformMatches(input.wanted, have)) return;
  throw new NoMatchingPlatformError(formatPlatform(normalizePlatform(input.wanted)), [formatPlatform(have)], { ref: input.ref, digest: input.digest });
}
