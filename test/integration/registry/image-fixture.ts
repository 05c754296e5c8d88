// Small but real images built in memory: gzip'd ustar layers, an OCI/Docker
// image config with matching diff_ids, and manifests of either flavour.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { MediaType, digestOf, type Descriptor } from '../../../src/registry/index.js';

export interface TarEntry {
  name: string;
  data: Buffer;
  mode?: number;
}

/** A POSIX ustar archive (regular files only), as layer tars are. */
export function makeTar(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const h = Buffer.alloc(512);
    if (Buffer.byteLength(e.name) > 100) throw new Error(`tar name too long: ${e.name}`);
    h.write(e.name, 0, 100, 'utf8');
    h.write(octal(e.mode ?? 0o644, 8), 100);
    h.write(octal(0, 8), 108);
    h.write(octal(0, 8), 116);
    h.write(octal(e.data.length, 12), 124);
    h.write(octal(1_700_000_000, 12), 136);
    h.fill(0x20, 148, 156); // checksum counted as spaces
    h.write('0', 156); // regular file
    h.write('ustar\u0000', 257, 'binary');
    h.write('00', 263);
    h.write('root', 265);
    h.write('root', 297);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'binary');
    blocks.push(h, e.data);
    const pad = (512 - (e.data.length % 512)) % 512;
    if (pad) blocks.push(Buffer.alloc(pad));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\u0000`;
}

/** Deterministic incompressible bytes, so gzip layers have a predictable, non-trivial size. */
export function pseudoRandom(seed: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < length; off += block.length) {
    block.copy(out, off, 0, Math.min(block.length, length - off));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

export interface Blob {
  data: Buffer;
  descriptor: Descriptor;
}

export interface Layer extends Blob {
  diffId: string;
}

export function makeLayer(entries: TarEntry[], mediaType: string = MediaType.OciLayerGzip): Layer {
  const tar = makeTar(entries);
  const data = gzipSync(tar);
  return { data, diffId: digestOf(tar), descriptor: { mediaType, digest: digestOf(data), size: data.length } };
}

export interface BuiltImage {
  config: Blob;
  layers: Layer[];
  manifest: Buffer;
  manifestDescriptor: Descriptor;
}

export interface ImageSpec {
  flavour: 'oci' | 'docker';
  os?: string;
  architecture: string;
  variant?: string;
  layers: TarEntry[][];
}

export function buildImage(spec: ImageSpec): BuiltImage {
  const oci = spec.flavour === 'oci';
  const layerType = oci ? MediaType.OciLayerGzip : MediaType.DockerLayerGzip;
  const layers = spec.layers.map((entries) => makeLayer(entries, layerType));
  const configDoc = {
    created: '2024-01-01T00:00:00Z',
    architecture: spec.architecture,
    os: spec.os ?? 'linux',
    ...(spec.variant ? { variant: spec.variant } : {}),
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/usr/bin:/bin'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `lazysnap test layer ${i}` })),
  };
  const configData = Buffer.from(JSON.stringify(configDoc));
  const config: Blob = {
    data: configData,
    descriptor: { mediaType: oci ? MediaType.OciConfig : MediaType.DockerConfig, digest: digestOf(configData), size: configData.length },
  };
  const manifestDoc = {
    schemaVersion: 2,
    mediaType: oci ? MediaType.OciManifest : MediaType.DockerManifest,
    config: config.descriptor,
    layers: layers.map((l) => l.descriptor),
  };
  const manifest = Buffer.from(JSON.stringify(manifestDoc, null, 2));
  return {
    config,
    layers,
    manifest,
    manifestDescriptor: { mediaType: manifestDoc.mediaType, digest: digestOf(manifest), size: manifest.length },
  };
}

export function buildIndex(flavour: 'oci' | 'docker', entries: Array<{ image: BuiltImage; platform: { os: string; architecture: string; variant?: string } }>): Buffer {
  const doc = {
    schemaVersion: 2,
    mediaType: flavour === 'oci' ? MediaType.OciIndex : MediaType.DockerManifestList,
    manifests: entries.map((e) => ({ ...e.image.manifestDescriptor, platform: e.platform })),
  };
  return Buffer.from(JSON.stringify(doc));
}
