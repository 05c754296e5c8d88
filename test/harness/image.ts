// Builds OCI images offline from files on this machine and pushes them to
// a registry with skopeo. Layers are gzip tars made by GNU tar, exactly as a
// docker build would store them; whiteouts are plain `.wh.` files.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export interface BuiltLayer {
  digest: string;
  diffId: string;
  size: number;
  mediaType: string;
  annotations?: Record<string, string>;
}

export interface BuiltImage {
  /** OCI layout directory, usable as `oci:DIR:TAG` by skopeo. */
  layoutDir: string;
  tag: string;
  layers: BuiltLayer[];
  manifestDigest: string;
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Writes a blob into the layout and returns its digest. */
function putBlob(layoutDir: string, data: Buffer): string {
  const digest = sha256(data);
  const dir = join(layoutDir, 'blobs', 'sha256');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, digest.slice(7)), data);
  return digest;
}

/** gzip tar of a directory's contents (GNU tar, numeric owners, stable order). */
export function tarDirectory(dir: string, outFile: string): Buffer {
  execFileSync('tar', ['--numeric-owner', '--sort=name', '--xattrs', '-C', dir, '-czf', outFile, '.']);
  return readFileSync(outFile);
}

export interface LayerSource {
  /** A directory whose contents form the layer. */
  dir: string;
}

export function buildImage(layoutDir: string, tag: string, layers: LayerSource[], cmd: string[] = ['/bin/sh']): BuiltImage {
  mkdirSync(layoutDir, { recursive: true });
  const built: BuiltLayer[] = layers.map((layer, i) => {
    const gz = tarDirectory(layer.dir, join(layoutDir, `layer-${i}.tar.gz`));
    const diffId = sha256(gunzipSync(gz));
    return { digest: putBlob(layoutDir, gz), diffId, size: gz.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
  });
  return writeManifest(layoutDir, tag, built, cmd);
}

/** Adds config, manifest and index for already-written layer blobs. */
export function writeManifest(layoutDir: string, tag: string, layers: BuiltLayer[], cmd: string[] = ['/bin/sh']): BuiltImage {
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: cmd, Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created_by: 'lazysnap test harness' })),
    }),
  );
  const configDigest = putBlob(layoutDir, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, ...(l.annotations ? { annotations: l.annotations } : {}) })),
    }),
  );
  const manifestDigest = putBlob(layoutDir, manifest);
  writeFileSync(join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(layoutDir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': tag },
          platform: { architecture: 'amd64', os: 'linux' },
        },
      ],
    }),
  );
  return { layoutDir, tag, layers, manifestDigest };
}

export function pushImage(image: BuiltImage, registryHost: string, repoAndTag: string): string {
  const ref = `${registryHost}/${repoAndTag}`;
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${image.layoutDir}:${image.tag}`, `docker://${ref}`], { stdio: 'pipe' });
  return ref;
}

/**
 * The standard multi-layer test image:
 *  0: busybox (static) with /bin/sh and applets, plus /etc/lower/ with two files
 *  1: Python's standard library and the zoneinfo database (thousands of files)
 *  2: a whiteout for /etc/lower/gone.txt, an opaque /opt/data, a marker file
 * Layer contents are chosen so a shell command can prove the union is right.
 */
export function buildTestImageTree(workDir: string): LayerSource[] {
  const base = join(workDir, 'layer-base');
  mkdirSync(join(base, 'bin'), { recursive: true });
  cpSync('/bin/busybox', join(base, 'bin', 'busybox'));
  for (const applet of ['sh', 'cat', 'ls', 'sha256sum', 'test', 'find', 'wc', 'echo', 'sleep', 'head']) {
    execFileSync('ln', ['-s', 'busybox', join(base, 'bin', applet)]);
  }
  mkdirSync(join(base, 'etc', 'lower'), { recursive: true });
  writeFileSync(join(base, 'etc', 'lower', 'kept.txt'), 'kept-from-layer-0\n');
  writeFileSync(join(base, 'etc', 'lower', 'gone.txt'), 'must-be-hidden\n');
  mkdirSync(join(base, 'opt', 'data'), { recursive: true });
  writeFileSync(join(base, 'opt', 'data', 'old.txt'), 'hidden-by-opaque\n');
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'run']) mkdirSync(join(base, d));

  const big = join(workDir, 'layer-big');
  mkdirSync(join(big, 'usr', 'lib'), { recursive: true });
  mkdirSync(join(big, 'usr', 'share'), { recursive: true });
  cpSync('/usr/lib/python3.11', join(big, 'usr', 'lib', 'python3.11'), { recursive: true, verbatimSymlinks: true });
  cpSync('/usr/share/zoneinfo', join(big, 'usr', 'share', 'zoneinfo'), { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(big, 'layer-1.txt'), 'from-layer-1\n');

  const top = join(workDir, 'layer-top');
  mkdirSync(join(top, 'etc', 'lower'), { recursive: true });
  writeFileSync(join(top, 'etc', 'lower', '.wh.gone.txt'), '');
  mkdirSync(join(top, 'opt', 'data'), { recursive: true });
  writeFileSync(join(top, 'opt', 'data', '.wh..wh..opq'), '');
  writeFileSync(join(top, 'opt', 'data', 'new.txt'), 'from-layer-2\n');
  writeFileSync(join(top, 'layer-2.txt'), 'from-layer-2\n');
  return [{ dir: base }, { dir: big }, { dir: top }];
}
