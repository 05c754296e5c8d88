import { readFileSync } from 'node:fs';

/** lazysnap's version from its package.json (three levels above dist/src/cli/), so it is never stale. */
export function packageVersion(): string {
  const text = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}
