/**
 * Converts an image in a registry to eStargz, layer by layer, and pushes
 * it: each layer is re-written with writeEstargz and annotated with its TOC
 * digest and uncompressed size; the config's diff_ids are rewritten to match;
 * everything else (history, env, labels) is kept. Layers that already are
 * eStargz (they carry a TOC digest annotation) are copied unchanged.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Logger } from 'pino';
import { ESTARGZ_UNCOMPRESSED_SIZE, STARGZ_TOC_DIGEST } from '../containerd/labels.js';
import { writeEstargz, type EstargzBuildResult } from '../estargz/index.js';
import { assertImagePlatform } from '../pull/image-platform.js';
import type { Descriptor, ImageManifest, RegistryClient } from '../registry/index.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

const CONVERTIBLE_LAYER_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.diff.tar',
]);

export interface ConvertOptions {
  source: string;
  destination: string;
  chunkSize?: number;
  compressionLevel?: number;
  /** Paths to put first in every layer that has them (the workload's start-up files). */
  prioritizedFiles?: string[];
  platform?: string;
  /** Where layers are staged while converting (default: the OS temp dir). */
  workDir?: string;
}

export type LayerConversion = 'converted' | 'kept';

export interface ConvertedLayer {
  source: Descriptor;
  result: Descriptor;
  action: LayerConversion;
  tocDigest: string;
}

export interface ConvertResult {
  destination: string;
  manifest: Descriptor;
  layers: ConvertedLayer[];
}

export class ConvertError extends Error {
  constructor(
    message: string,
    readonly ref: string,
    readonly digest?: string,
    options?: { cause?: unknown },
  ) {
    super(`convert ${ref}${digest ? ` layer ${digest}` : ''}: ${message}`, options);
    this.name = 'ConvertError';
  }
}

export interface ConvertProgress {
  layer(index: number, total: number, digest: string, state: string): void;
}

export async function convertImage(options: ConvertOptions, registry: RegistryClient, progress: ConvertProgress, logger: Logger): Promise<ConvertResult> {
  const resolved = await registry.resolve(options.source, options.platform ? { platform: options.platform } : {});
  const config = await registry.getConfig(resolved.ref, resolved.manifest);
  assertImagePlatform({ ref: options.source, digest: resolved.descriptor.digest, wanted: resolved.platform, config: config.config });
  const srcRef = resolved.ref;
  const dstRef = registry.parse(options.destination);
  const sameRegistry = srcRef.registry === dstRef.registry;
  const workDir = await mkdtemp(join(options.workDir ?? tmpdir(), 'lazysnap-convert-'));
  try {
    const layers: ConvertedLayer[] = [];
    const diffIds: string[] = [];
    const total = resolved.manifest.layers.length;
    for (const [i, layer] of resolved.manifest.layers.entries()) {
      const existingToc = layer.annotations?.[STARGZ_TOC_DIGEST];
      if (existingToc) {
        progress.layer(i, total, layer.digest, 'already eStargz, copying');
        await copyBlob(registry, srcRef.toString(), dstRef.toString(), layer, sameRegistry ? [srcRef.repository] : [], logger);
        layers.push({ source: layer, result: layer, action: 'kept', tocDigest: existingToc });
        diffIds.push(config.config.rootfs?.diff_ids?.[i] ?? '');
        continue;
      }
      if (!CONVERTIBLE_LAYER_TYPES.has(layer.mediaType)) {
        throw new ConvertError(`layer media type ${layer.mediaType} cannot be converted`, options.source, layer.digest);
      }
      progress.layer(i, total, layer.digest, 'converting');
      const built = await convertLayer(registry, srcRef.toString(), layer, workDir, join(workDir, `layer-${i}`), options);
      progress.layer(i, total, layer.digest, `pushing ${(built.result.compressedSize / 1048576).toFixed(1)} MiB`);
      await registry.pushBlob(dstRef, { stream: createReadStream(built.path), size: built.result.compressedSize, digest: built.result.compressedDigest }, { chunkSize: 32 * 1024 * 1024 });
      await rm(built.path, { force: true });
      const descriptor: Descriptor = {
        mediaType: OCI_LAYER_GZIP,
        digest: built.result.compressedDigest,
        size: built.result.compressedSize,
        annotations: {
          ...withoutStargz(layer.annotations),
          [STARGZ_TOC_DIGEST]: built.result.tocDigest,
          [ESTARGZ_UNCOMPRESSED_SIZE]: String(built.result.uncompressedSize),
        },
      };
      layers.push({ source: layer, result: descriptor, action: 'converted', tocDigest: built.result.tocDigest });
      diffIds.push(built.result.diffId);
      progress.layer(i, total, built.result.compressedDigest, 'done');
      logger.info({ source: layer.digest, result: built.result.compressedDigest, toc: built.result.tocDigest }, 'layer converted');
    }

    const newConfig = { ...config.config, rootfs: { type: 'layers', diff_ids: diffIds } };
    const configBytes = Buffer.from(JSON.stringify(newConfig));
    const configPushed = await registry.pushBlob(dstRef, configBytes);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configPushed.digest, size: configBytes.length },
      layers: layers.map((l) => l.result),
      ...(resolved.manifest.annotations ? { annotations: resolved.manifest.annotations } : {}),
    };
    const manifestDescriptor = await registry.pushManifest(dstRef, Buffer.from(JSON.stringify(manifest)), { mediaType: OCI_MANIFEST });
    return { destination: dstRef.toString(), manifest: manifestDescriptor, layers };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

async function convertLayer(registry: RegistryClient, ref: string, layer: Descriptor, workDir: string, path: string, options: ConvertOptions): Promise<{ path: string; result: EstargzBuildResult }> {
  let source: Readable | undefined;
  let out: WriteStream | undefined;
  try {
    source = (await registry.openBlob(ref, layer.digest, { size: layer.size })).stream;
    out = createWriteStream(path);
    const result = await writeEstargz(source, out, {
      ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
      ...(options.compressionLevel !== undefined ? { compressionLevel: options.compressionLevel } : {}),
      prioritizedFiles: options.prioritizedFiles ?? [],
      // A prioritized list names files of the whole image; each layer has only some of them.
      allowMissingPrioritizedFiles: true,
      tmpDir: workDir,
    });
    await finished(out);
    const { size } = await stat(path);
    if (size !== result.compressedSize) throw new Error(`wrote ${size} bytes but the writer reports ${result.compressedSize}`);
    return { path, result };
  } catch (err) {
    // An unread response body holds its connection, and the registry client's close waits for it forever.
    source?.destroy();
    out?.destroy();
    throw new ConvertError((err as Error).message, ref, layer.digest, { cause: err });
  }
}

async function copyBlob(registry: RegistryClient, from: string, to: string, layer: Descriptor, mountFrom: string[], logger: Logger): Promise<void> {
  if (await registry.blobExists(to, layer.digest)) return;
  if (mountFrom.length > 0 && (await mountOrWarn(registry, to, layer.digest, `${to.split('/')[0]}/${mountFrom[0]}`, logger))) return;
  const { stream } = await registry.openBlob(from, layer.digest, { size: layer.size });
  try {
    await registry.pushBlob(to, { stream, size: layer.size, digest: layer.digest });
  } catch (err) {
    stream.destroy();
    throw new ConvertError(`copy to ${to}: ${(err as Error).message}`, from, layer.digest, { cause: err });
  }
}

/** A cross-repository mount saves the copy; when it fails the blob is copied instead, and the failure is logged. */
async function mountOrWarn(registry: RegistryClient, to: string, digest: string, from: string, logger: Logger): Promise<boolean> {
  try {
    return await registry.mountBlob(to, digest, from);
  } catch (err) {
    logger.warn({ err, digest, from, to }, 'cross-repository mount failed; copying the blob instead');
    return false;
  }
}

function withoutStargz(annotations: Record<string, string> | undefined): Record<string, string> {
  const out = { ...(annotations ?? {}) };
  delete out[STARGZ_TOC_DIGEST];
  delete out[ESTARGZ_UNCOMPRESSED_SIZE];
  return out;
}
