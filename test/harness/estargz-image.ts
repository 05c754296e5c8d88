// Builds the standard test image, pushes it, and converts it to eStargz
// with `lazysnap convert`, so remote-snapshot tests start from real,
// registry-served eStargz layers.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage, buildTestImageTree, pushImage } from './image.js';
import { lazysnapCli } from './lazysnap-cli.js';

export interface TestImages {
  plainRef: string;
  estargzRef: string;
  /** sha256 of files the container reads, from the lowest and highest layers. */
  expected: Record<string, string>;
}

export async function pushTestImages(workDir: string, registryHost: string, name: string): Promise<TestImages> {
  const tree = buildTestImageTree(join(workDir, `tree-${name}`));
  const image = buildImage(join(workDir, `oci-${name}`), 'v1', tree);
  const plainRef = pushImage(image, registryHost, `lazysnap/${name}:plain`);
  const estargzRef = `${registryHost}/lazysnap/${name}:esgz`;
  await lazysnapCli(['convert', '--chunk-size', '262144', '--compression-level', '1', plainRef, estargzRef]);
  const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
  return {
    plainRef,
    estargzRef,
    expected: {
      '/bin/busybox': sha(join(tree[0]!.dir, 'bin', 'busybox')),
      '/usr/lib/python3.11/os.py': sha(join(tree[1]!.dir, 'usr', 'lib', 'python3.11', 'os.py')),
      '/usr/lib/python3.11/typing.py': sha(join(tree[1]!.dir, 'usr', 'lib', 'python3.11', 'typing.py')),
      '/opt/data/new.txt': sha(join(tree[2]!.dir, 'opt', 'data', 'new.txt')),
    },
  };
}

/** A shell command printing `sha256  path` for every expected file. */
export function checksumCommand(expected: Record<string, string>): string[] {
  return ['/bin/sh', '-c', `sha256sum ${Object.keys(expected).join(' ')}; test -e /etc/lower/gone.txt || echo whiteout-ok; ls /opt/data`];
}

export function assertChecksums(output: string, expected: Record<string, string>): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const line of output.trim().split('\n')) {
    const [hash, path] = line.trim().split(/\s+/);
    if (hash && path) seen.set(path, hash);
  }
  for (const [path, hash] of Object.entries(expected)) {
    if (seen.get(path) !== hash) problems.push(`${path}: got ${seen.get(path)}, want ${hash}`);
  }
  if (!output.includes('whiteout-ok')) problems.push('whiteout did not hide /etc/lower/gone.txt');
  if (!/\nnew\.txt\s*$/.test(output)) problems.push(`opaque /opt/data should list only new.txt: ${output}`);
  return problems;
}
