// Platform matching for image indexes. The normalisation follows containerd's
// `platforms` package (aarch64 → arm64, arm64/v8 is plain arm64, bare arm is
// arm/v7) so that lazysnap picks the same manifest containerd would: a
// snapshot prepared for one platform and unpacked by containerd for another
// would be a silent, confusing failure.
import type { Descriptor } from './manifest.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

export const DEFAULT_PLATFORM: Platform = Object.freeze({ os: 'linux', architecture: 'amd64' });

/** Parses `os/arch[/variant]`, e.g. `linux/arm64`, `linux/arm/v7`. */
export function parsePlatform(spec: string): Platform {
  const parts = spec.trim().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '' || !/^[A-Za-z0-9_.-]+$/.test(p))) {
    throw new Error(`invalid platform ${JSON.stringify(spec)}: want os/arch[/variant]`);
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return normalizePlatform(variant === undefined ? { os, architecture } : { os, architecture, variant });
}

export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

export function normalizePlatform(p: Platform): Platform {
  let os = (p.os ?? '').toLowerCase();
  if (os === 'macos') os = 'darwin';
  let architecture = (p.architecture ?? '').toLowerCase();
  let variant = (p.variant ?? '').toLowerCase();
  switch (architecture) {
    case 'i386':
      architecture = '386';
      variant = '';
      break;
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      architecture = 'amd64';
      if (variant === 'v1') variant = '';
      break;
    case 'aarch64':
    case 'arm64':
      architecture = 'arm64';
      if (variant === '8' || variant === 'v8' || variant === 'v8.0') variant = '';
      break;
    case 'armhf':
      architecture = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      architecture = 'arm';
      variant = 'v6';
      break;
    case 'arm':
      if (variant === '') variant = 'v7';
      else if (/^[5-8]$/.test(variant)) variant = `v${variant}`;
      break;
    default:
      break;
  }
  const out: Platform = { os, architecture };
  if (variant !== '') out.variant = variant;
  if (p['os.version'] !== undefined) out['os.version'] = p['os.version'];
  if (p['os.features'] !== undefined) out['os.features'] = p['os.features'];
  return out;
}

/**
 * How well `have` serves `want`: 0 is an exact match, higher numbers are
 * compatible fallbacks (arm/v7 can run arm/v6 binaries, amd64/v3 can run
 * plain amd64), and -1 means it cannot run at all.
 */
export function platformRank(want: Platform, have: Platform): number {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return -1;
  const wv = w.variant ?? '';
  const hv = h.variant ?? '';
  const order = compatibleVariants(w.architecture, wv);
  const i = order.indexOf(hv);
  if (i !== -1) return i;
  // An architecture we know nothing about: an unspecified wanted variant
  // accepts any, after the exact match.
  if (wv === '' && !KNOWN_VARIANT_ARCHES.has(w.architecture)) return order.length;
  return -1;
}

export function platformMatches(want: Platform, have: Platform): boolean {
  return platformRank(want, have) >= 0;
}

const KNOWN_VARIANT_ARCHES = new Set(['arm', 'arm64', 'amd64']);

function compatibleVariants(architecture: string, variant: string): string[] {
  if (architecture === 'arm') {
    const ladder = ['v8', 'v7', 'v6', 'v5'];
    const i = ladder.indexOf(variant);
    return i === -1 ? [variant] : ladder.slice(i);
  }
  if (architecture === 'amd64') {
    const ladder = ['v4', 'v3', 'v2', ''];
    const i = ladder.indexOf(variant);
    return i === -1 ? [variant] : ladder.slice(i);
  }
  if (architecture === 'arm64') {
    return variant === '' ? [''] : [variant, ''];
  }
  return [variant];
}

/**
 * The best entry of an index for `want`; ties go to the earliest entry, as
 * index order is the publisher's preference. Entries without a platform are
 * skipped (they are attestations, signatures or other artifacts).
 */
export function selectPlatformManifest<D extends Descriptor>(manifests: readonly D[], want: Platform): D | undefined {
  let best: D | undefined;
  let bestRank = Number.POSITIVE_INFINITY;
  for (const d of manifests) {
    if (!d.platform) continue;
    const rank = platformRank(want, d.platform);
    if (rank >= 0 && rank < bestRank) {
      best = d;
      bestRank = rank;
    }
  }
  return best;
}
