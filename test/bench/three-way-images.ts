// The images of the three-way start-up benchmark, built offline from files
// on this machine and converted to eStargz by stargz-snapshotter's own
// `ctr-remote convert --estargz`, so that neither lazysnap nor stargz-snapshotter
// reads an image made by its own converter.
//   probe: busybox; Python's standard library; a layer with a whiteout, an
//          opaque directory and /etc/hello.txt; 32 MiB of random data
//   big:   probe's layers plus /usr/share/go-1.19 and /usr/lib/go-1.19
// The command a container runs reads a few files from several layers and
// prints what proves it saw the right union.
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { startContainerd } from '../harness/containerd.js';
import { pushImage, writeManifest, type BuiltLayer } from '../harness/image.js';
import { removeTree } from '../harness/process.js';
import { unmountUnder } from './mounts-under.js';

const execFileAsync = promisify(execFile);

export const IMAGE_NAMES = ['probe', 'big'] as const;
export type ImageName = (typeof IMAGE_NAMES)[number];

const BIG_DIRS = ['/usr/share/go-1.19', '/usr/lib/go-1.19'];
const BIG_FILE = '/usr/lib/go-1.19/bin/gofmt';
const PYTHON_LIB = '/usr/lib/python3.11';
const RANDOM_MIB = 32;
const RANDOM_READ_BYTES = 2 * 1024 * 1024;
const HELLO = 'hello from layer 3';
const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';

export interface ThreeWayImage {
  name: ImageName;
  /** repository:tag of the eStargz image, to be put behind any registry host serving the same storage. */
  repoTag: string;
  layerDigests: string[];
  gzipBytes: number;
  estargzBytes: number;
  /** Bytes of the layer tars the image was built from. */
  uncompressedBytes: number;
  /** Shell command the container runs. */
  command: string;
  /** Strings the command's output must contain. */
  expectedOutput: string[];
}

/** What goes into one layer tar: paths relative to root, listed ones only or with their subtrees. */
interface LayerSpec {
  root: string;
  only: string[];
  withSubtrees: string[];
}

/** Runs a command; its failure carries the command line and its stderr. */
function run(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { stdio: 'pipe', maxBuffer: 64 * 1024 * 1024 }).toString();
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${e.stderr?.toString().trim() || e.message}`);
  }
}

function sha256OfFile(path: string): string {
  return `sha256:${run('sha256sum', [path]).split(' ')[0]}`;
}

function sha256OfPrefix(path: string, bytes: number): string {
  return run('/bin/sh', ['-c', 'head -c "$1" "$2" | sha256sum', 'sh', String(bytes), path]).split(' ')[0] as string;
}

/** Directories leading to a host path, so its layer carries their entries too (usr, usr/share for usr/share/go-1.19). */
function parentsOf(relativePath: string): string[] {
  const parts = relativePath.split('/').slice(0, -1);
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}

function hostTreeLayer(absolutePath: string): LayerSpec {
  const rel = absolutePath.replace(/^\/+/, '');
  return { root: '/', only: parentsOf(rel), withSubtrees: [rel] };
}

function busyboxLayer(dir: string): LayerSpec {
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'var', 'usr/bin', 'usr/sbin']) mkdirSync(join(dir, d), { recursive: true });
  cpSync('/bin/busybox', join(dir, 'bin', 'busybox'));
  for (const applet of run('/bin/busybox', ['--list-full']).split('\n').filter(Boolean)) {
    const at = join(dir, applet);
    mkdirSync(dirname(at), { recursive: true });
    if (!existsSync(at)) symlinkSync('/bin/busybox', at);
  }
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\n');
  return { root: dir, only: [], withSubtrees: ['.'] };
}

/** A whiteout over a Python module, an opaque json/ package holding one file, and /etc/hello.txt. */
function overridesLayer(dir: string): LayerSpec {
  const py = join(dir, PYTHON_LIB.slice(1));
  mkdirSync(join(py, 'json'), { recursive: true });
  mkdirSync(join(dir, 'etc'), { recursive: true });
  writeFileSync(join(dir, 'etc', 'hello.txt'), `${HELLO}\n`);
  writeFileSync(join(py, '.wh.antigravity.py'), '');
  writeFileSync(join(py, 'json', '.wh..wh..opq'), '');
  writeFileSync(join(py, 'json', 'only.py'), '# replaced\n');
  return { root: dir, only: [], withSubtrees: ['.'] };
}

function randomDataLayer(dir: string): LayerSpec {
  mkdirSync(join(dir, 'data'), { recursive: true });
  run('/bin/sh', ['-c', 'head -c "$1" /dev/urandom > "$2"', 'sh', String(RANDOM_MIB * 1024 * 1024), join(dir, 'data', 'random.bin')]);
  return { root: dir, only: [], withSubtrees: ['.'] };
}

/** Writes the layer as a gzip blob into the OCI layout; returns it and its tar's size. */
function writeLayer(spec: LayerSpec, layoutDir: string, index: number): { layer: BuiltLayer; tarBytes: number } {
  mkdirSync(layoutDir, { recursive: true });
  const tar = join(layoutDir, `layer-${index}.tar`);
  run('tar', [
    '--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '--sort=name', '-C', spec.root, '-cf', tar,
    '--no-recursion', ...spec.only, '--recursion', ...spec.withSubtrees,
  ]);
  const tarBytes = statSync(tar).size;
  const diffId = sha256OfFile(tar);
  run('gzip', ['-n', '-6', tar]);
  const digest = sha256OfFile(`${tar}.gz`);
  const blobDir = join(layoutDir, 'blobs', 'sha256');
  mkdirSync(blobDir, { recursive: true });
  renameSync(`${tar}.gz`, join(blobDir, digest.slice(7)));
  const size = statSync(join(blobDir, digest.slice(7))).size;
  return { layer: { digest, diffId, size, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }, tarBytes };
}

interface ManifestLayer {
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

async function fetchManifest(registryHost: string, repo: string, tag: string): Promise<{ layers: ManifestLayer[] }> {
  const url = `http://${registryHost}/v2/${repo}/manifests/${tag}`;
  const res = await fetch(url, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' } });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return (await res.json()) as { layers: ManifestLayer[] };
}

export function checkHostFiles(names: readonly ImageName[]): void {
  const needed = [PYTHON_LIB, '/bin/busybox', ...(names.includes('big') ? [...BIG_DIRS, BIG_FILE] : [])];
  const missing = needed.filter((p) => !existsSync(p));
  if (missing.length > 0) throw new Error(`three-way images need ${missing.join(', ')} on this machine`);
}

/** Converts REPO:v1 to REPO:esgz with ctr-remote on a throw-away containerd (overlayfs staging). */
async function convertWithCtrRemote(workDir: string, registryHost: string, repo: string): Promise<void> {
  const dir = join(workDir, `convert-${repo}`);
  const containerd = await startContainerd(dir);
  const source = `${registryHost}/${repo}:v1`;
  const target = `${registryHost}/${repo}:esgz`;
  try {
    await containerd.ctr(['images', 'pull', '--plain-http', source], { timeoutMs: 1_800_000 });
    try {
      await execFileAsync('ctr-remote', ['--address', containerd.socket, '--namespace', containerd.namespace, 'images', 'convert', '--oci', '--estargz', source, target], {
        timeout: 1_800_000,
        maxBuffer: 64 * 1024 * 1024,
      });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`ctr-remote images convert --estargz ${source} failed: ${e.stderr || e.message}`);
    }
    await containerd.ctr(['images', 'push', '--plain-http', target, target], { timeoutMs: 1_800_000 });
  } finally {
    await containerd.stop();
    unmountUnder(dir);
    removeTree(dir);
  }
}

export async function buildThreeWayImage(workDir: string, registryHost: string, name: ImageName): Promise<ThreeWayImage> {
  const dir = join(workDir, `image-${name}`);
  const layout = join(dir, 'oci');
  const specs = [
    busyboxLayer(join(dir, 'busybox')),
    hostTreeLayer(PYTHON_LIB),
    overridesLayer(join(dir, 'overrides')),
    randomDataLayer(join(dir, 'random')),
    ...(name === 'big' ? BIG_DIRS.map(hostTreeLayer) : []),
  ];
  const randomPrefixSha = sha256OfPrefix(join(dir, 'random', 'data', 'random.bin'), RANDOM_READ_BYTES);
  const written = specs.map((spec, i) => writeLayer(spec, layout, i));
  const built = writeManifest(layout, 'v1', written.map((w) => w.layer));
  pushImage(built, registryHost, `${name}:v1`);
  removeTree(dir);
  await convertWithCtrRemote(workDir, registryHost, name);

  const estargz = await fetchManifest(registryHost, name, 'esgz');
  const withoutToc = estargz.layers.filter((l) => !l.annotations?.[TOC_DIGEST_ANNOTATION]);
  if (withoutToc.length > 0) throw new Error(`${name}:esgz has layers without ${TOC_DIGEST_ANNOTATION}: ${withoutToc.map((l) => l.digest).join(', ')}`);

  const reads = ['cat /etc/hello.txt', `head -n 3 ${PYTHON_LIB}/os.py`, `head -c ${RANDOM_READ_BYTES} /data/random.bin | sha256sum`];
  const expectedOutput = [HELLO, randomPrefixSha];
  if (name === 'big') {
    reads.push(`sha256sum ${BIG_FILE}`, 'ls /usr/share/go-1.19/src/net/http | wc -l');
    expectedOutput.push(sha256OfFile(BIG_FILE).slice(7));
  }
  return {
    name,
    repoTag: `${name}:esgz`,
    layerDigests: estargz.layers.map((l) => l.digest),
    gzipBytes: written.reduce((n, w) => n + w.layer.size, 0),
    estargzBytes: estargz.layers.reduce((n, l) => n + l.size, 0),
    uncompressedBytes: written.reduce((n, w) => n + w.tarBytes, 0),
    command: reads.join('; '),
    expectedOutput,
  };
}
