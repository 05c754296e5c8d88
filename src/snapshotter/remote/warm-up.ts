/**
 * A fresh process pays V8's start-up costs (parsing and compiling code on
 * first use, undici's llhttp WebAssembly, lazily loaded Node internals) the
 * first time it does each thing. For the FUSE manager that first time is the
 * first image it serves, on the critical path of a container start: measured
 * on the probe image, a manager that had served one unrelated image before
 * used 110-160 ms of CPU for the pull instead of 210-270 ms, and the pull
 * finished ~100 ms sooner.
 *
 * So right after start the manager runs the whole remote path once on a
 * made-up layer of its own: an eStargz blob (warm-up-layer.ts), served with a
 * manifest by an HTTP server on 127.0.0.1 that lives for this warm-up only,
 * read through a registry client like the real one (manifest, footer and TOC
 * by range requests, TOC parse), mounted with FUSE in a private
 * directory and read through the mount (lookups, attributes, directory
 * listing, chunk fetch, inflate, verification). Nothing of it is kept: no
 * cache, no metrics, no state a user sees. It doubles as a self-test: a step
 * that fails is reported, naming the step (FUSE that cannot mount is worth
 * knowing before the first Prepare).
 *
 * It stops before its next step as soon as real work arrives (`busy`): it
 * must never compete with the pull it is meant to speed up.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { STARGZ_TOC_DIGEST } from '../../containerd/labels.js';
import { cleanupStaleMounts, mountLayer, type MountedLayer } from '../../fuse/index.js';
import { ChunkCache, openRemoteLayer, registryFetcher, type Logger, type RemoteLayer, type TocParser } from '../../layer/index.js';
import { warmUpTocParsing } from '../../layer/toc-warm-up.js';
import { MediaType, RegistryClient, digestOf } from '../../registry/index.js';
import { serveImageOnLoopback } from '../../registry/loopback-image.js';
import { TocDigestResolver } from './toc-digest-resolver.js';
import { PREBUILT_WARM_UP_LAYER, WARM_UP_SMALL_FILE_START, warmUpBigFile, warmUpLayer, type WarmUpLayer } from './warm-up-layer.js';

export interface WarmUpOptions {
  /** A directory of its own (emptied first, removed afterwards): the blob's spool files and the mountpoint go here. */
  dir: string;
  /** Where the made-up TOC is parsed. */
  tocParser: TocParser;
  logger: Logger;
  /** True once real work waits: the warm-up stops before its next step. */
  busy: () => boolean;
  signal?: AbortSignal | undefined;
}

export interface WarmUpResult {
  /** Steps run to the end, in order. */
  steps: string[];
  /** Set when it stopped early because real work arrived or it was aborted. */
  stoppedAt?: string;
  ms: number;
}

/** Thrown to say which step of the warm-up failed. */
export class WarmUpError extends Error {
  constructor(readonly step: string, cause: unknown) {
    super(`warm-up step "${step}" failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'WarmUpError';
  }
}

/** An OCI manifest of the one layer, annotated as an eStargz converter does. */
function manifestOf(blob: Buffer, result: WarmUpLayer): Buffer {
  const config = Buffer.from('{}');
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.length },
    layers: [{ mediaType: MediaType.OciLayerGzip, digest: result.compressedDigest, size: blob.length, annotations: { [STARGZ_TOC_DIGEST]: result.tocDigest } }],
  }));
}

/**
 * The warm-up's own steps log what real layers log ("layer opened", "layer
 * mounted"); at info level that would read like real layers in the log, so
 * it is told at debug level. Warnings and errors stay what they are.
 */
function quieter(logger: Logger): Logger {
  return { debug: (obj, msg) => logger.debug(obj, msg), info: (obj, msg) => logger.debug(obj, msg), warn: (obj, msg) => logger.warn(obj, msg), error: (obj, msg) => logger.error(obj, msg) };
}

export async function warmUpRemotePath(options: WarmUpOptions): Promise<WarmUpResult> {
  const started = performance.now();
  const { dir } = options;
  const logger = quieter(options.logger);
  const steps: string[] = [];
  let server: Server | undefined;
  let registry: RegistryClient | undefined;
  let layer: RemoteLayer | undefined;
  let mount: MountedLayer | undefined;
  const step = async <T>(name: string, run: () => Promise<T>): Promise<T | undefined> => {
    if (options.busy() || options.signal?.aborted) return undefined;
    try {
      const value = await run();
      steps.push(name);
      return value;
    } catch (err) {
      throw new WarmUpError(name, err);
    }
  };
  const stoppedAt = (): WarmUpResult => ({ steps, stoppedAt: steps.length === 0 ? 'start' : `after ${steps[steps.length - 1]}`, ms: performance.now() - started });
  try {
    // A warm-up cut short by a crash may have left its mount behind, dead.
    await cleanupStaleMounts(dir, logger);
    await rm(dir, { recursive: true, force: true });
    const mountpoint = join(dir, 'mnt');
    // Small TOCs are parsed on this thread: its parser's loops get optimised code too.
    if (!(await step('parse', async () => {
      await warmUpTocParsing(() => options.busy() || options.signal?.aborted === true, 8, 600);
      return true;
    }))) return stoppedAt();
    const result = await step('layer', async () => {
      await mkdir(mountpoint, { recursive: true, mode: 0o700 });
      return warmUpLayer(dir);
    });
    if (!result) return stoppedAt();
    const { blob } = result;
    if (!result.prebuilt) logger.debug({ file: PREBUILT_WARM_UP_LAYER }, 'warm-up: no usable prebuilt layer; wrote one');
    server = await step('serve', () => serveImageOnLoopback(manifestOf(blob, result), blob, result.compressedDigest));
    if (!server) return stoppedAt();
    const ref = `127.0.0.1:${(server.address() as AddressInfo).port}/lazysnap/warm-up:latest`;
    // No credentials, no proxy, no hosts.toml: only this loopback server is ever asked.
    registry = new RegistryClient({ retry: { maxAttempts: 1 }, logger });
    const client = registry;
    // As a Prepare without a TOC digest label finds it: in the manifest.
    const found = await step('resolve', () => new TocDigestResolver(client).lookup(ref, result.compressedDigest));
    if (!found) return stoppedAt();
    if (found.tocDigest !== result.tocDigest || found.size !== blob.length) throw new WarmUpError('resolve', new Error('the manifest read back does not give the layer\'s TOC digest and size'));
    layer = await step('open', () => openRemoteLayer({
      ref,
      digest: result.compressedDigest,
      size: found.size,
      expectedTocDigest: found.tocDigest,
      fetcher: registryFetcher(client, ref, result.compressedDigest),
      cache: ChunkCache.inMemory(4 * 1024 * 1024),
      tocParser: options.tocParser,
      logger,
      fetchTimeoutMs: 5_000,
    }));
    if (!layer) return stoppedAt();
    const content = layer;
    mount = await step('mount', () => mountLayer(content, mountpoint, { logger, mountTimeoutMs: 5_000, answerTimeoutMs: 5_000 }));
    if (!mount) return stoppedAt();
    const read = await step('read', async () => {
      const lib = join(mountpoint, 'usr/lib');
      const names = await readdir(lib);
      for (const name of names.slice(0, 16)) await stat(join(lib, name));
      await stat(join(lib, 'missing.py')).catch(() => undefined);
      await readlink(join(lib, 'link'));
      const [small, bigRead] = await Promise.all([readFile(join(lib, 'hard'), 'utf8'), readFile(join(lib, 'big.bin'))]);
      // Wrong bytes from a mount must never pass silently, made-up layer or not.
      if (!small.startsWith(WARM_UP_SMALL_FILE_START) || !bigRead.equals(warmUpBigFile())) {
        throw new Error('the made-up layer read back different bytes than were written');
      }
      return true;
    });
    if (!read) return stoppedAt();
    return { steps, ms: performance.now() - started };
  } finally {
    await mount?.unmount().catch((err: unknown) => logger.warn({ err }, 'warm-up: unmounting the made-up layer failed'));
    await layer?.close().catch(() => undefined);
    await registry?.close().catch(() => undefined);
    if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
    await rm(dir, { recursive: true, force: true }).catch((err: unknown) => logger.warn({ err, dir }, 'warm-up: removing its directory failed'));
  }
}
