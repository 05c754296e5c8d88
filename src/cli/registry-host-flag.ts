// `--hosts-dir DIR` of `pull` and `convert`, taken as ctr takes it: relative
// to the working directory (the config key itself must be absolute).
import { resolve } from 'node:path';

export function hostsDirFlag(value: string | undefined): string | undefined {
  return value === undefined ? undefined : resolve(value);
}
