/**
 * Entry names in tars and TOCs come in many spellings of one path: "./a/b", "a/b/",
 * "a//b". stargz-snapshotter keys everything by path.Clean("/"+name) without the
 * leading slash; we produce the same key but refuse the spellings that only a hostile
 * or broken archive would use (absolute paths, ".." components, NUL), instead of
 * silently re-rooting them.
 */
export type NameProblem = 'empty-name' | 'nul-in-name' | 'absolute-path' | 'path-traversal' | 'name-too-long';

export const MAX_NAME_BYTES = 4096;
export const MAX_COMPONENT_BYTES = 255;

/** An empty segment ("//") or a "." or ".." segment anywhere. */
const ODD_SEGMENTS = /\/\/|(^|\/)\.{1,2}(\/|$)/;

export type NormalizedName = { ok: true; name: string } | { ok: false; problem: NameProblem };

/** Normalizes a TOC or tar entry name to its clean relative key; "" is the root directory. */
export function normalizeEntryName(raw: string, maxBytes = MAX_NAME_BYTES): NormalizedName {
  if (raw.includes('\0')) return { ok: false, problem: 'nul-in-name' };
  if (raw.startsWith('/')) return { ok: false, problem: 'absolute-path' };
  const bytes = Buffer.byteLength(raw);
  if (bytes > maxBytes) return { ok: false, problem: 'name-too-long' };
  // Most names are already clean but for a trailing slash; TOCs hold hundreds of thousands.
  if (bytes > 0 && bytes <= MAX_COMPONENT_BYTES && !ODD_SEGMENTS.test(raw)) return { ok: true, name: raw.endsWith('/') ? raw.slice(0, -1) : raw };
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') return { ok: false, problem: 'path-traversal' };
    if (Buffer.byteLength(part) > MAX_COMPONENT_BYTES) return { ok: false, problem: 'name-too-long' };
    parts.push(part);
  }
  return { ok: true, name: parts.join('/') };
}

/**
 * The lenient cleaning stargz-snapshotter applies to caller-given paths (prioritized
 * files, lookups): "/a/b", "./a/b" and "../a/b" all mean "a/b". Only for trusted input.
 */
export function cleanLookupPath(p: string): string {
  const parts: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      parts.pop();
      continue;
    }
    parts.push(part);
  }
  return parts.join('/');
}

export function parentOf(name: string): string {
  const slash = name.lastIndexOf('/');
  return slash < 0 ? '' : name.slice(0, slash);
}

export function baseOf(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}
