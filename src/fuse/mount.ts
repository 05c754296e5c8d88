// Mounting a layer and taking it down again.
import { statSync } from 'node:fs';
import { detachMount } from './detach.js';
import { LayerFuse } from './layer-fuse.js';
import type { FuseLogger } from './logger.js';
import { buildMountOptions } from './mount-options.js';
import { MountpointBusyError } from './errors.js';
import { canonicalMountPath, hasMountAt } from './mountinfo.js';
import { createOperations, type FuseOperationObserver } from './operations.js';
import type { LayerContent } from './types.js';

export interface MountLayerOptions {
  logger: FuseLogger;
  /** Source column of the mount table (mountinfo, df). Default "lazysnap". */
  fsname?: string;
  /** The mount's type becomes "fuse.<subtype>". Default "estargz". */
  subtype?: string;
  /** Seconds the kernel may cache lookups and attributes. Default 3600: the layer never changes. */
  cacheTimeoutSeconds?: number;
  /** How long to wait for the kernel to start serving the mount. Default 30 s. */
  mountTimeoutMs?: number;
  /** libfuse's own request tracing on stderr. */
  debug?: boolean;
  /** Told of every answered request (metrics). */
  observe?: FuseOperationObserver | undefined;
  /** Every request is answered within this many ms, EIO at worst (see OperationOptions). */
  answerTimeoutMs?: number | undefined;
}

export interface MountedLayer {
  /** Absolute path the layer is mounted on. */
  readonly mountpoint: string;
  /**
   * Lazily unmounts (see detach.ts) and releases the native handle. Safe to
   * call more than once and concurrently; a failed attempt can be retried.
   */
  unmount(): Promise<void>;
}

/**
 * Serves content read-only at mountpoint (an existing, empty directory).
 * Fails with MountpointBusyError when something is mounted there already.
 * Never touch the mount with synchronous fs calls from this process: the
 * handlers run on this process's event loop, so a blocking call deadlocks.
 */
export async function mountLayer(content: LayerContent, mountpoint: string, options: MountLayerOptions): Promise<MountedLayer> {
  const { logger } = options;
  const target = await canonicalMountPath(mountpoint);
  const mountOptions = buildMountOptions({
    fsname: options.fsname ?? 'lazysnap',
    subtype: options.subtype ?? 'estargz',
    cacheTimeoutSeconds: options.cacheTimeoutSeconds ?? 3600,
    debug: options.debug ?? false,
  });

  // fuse-native's own checks give vague errors ("fuse failed", or stat's
  // ENOTCONN for a dead mount), so say what is wrong first.
  if (await hasMountAt(target)) throw new MountpointBusyError(target);
  // Nothing is mounted there (just checked), so this stat cannot wait on a FUSE request of ours.
  const st = statSync(target);
  if (!st.isDirectory()) throw new Error(`cannot mount layer on ${target}: not a directory`);

  const fuse = new LayerFuse(target, createOperations(content, logger, { observe: options.observe, answerTimeoutMs: options.answerTimeoutMs }), { mountOptions, logger });
  const timeoutMs = options.mountTimeoutMs ?? 30_000;
  try {
    await new Promise<void>((resolve, reject) => {
      // fuse-native calls back when the kernel's INIT request reaches us, i.e.
      // when the mount is serving; if it never comes, do not wait forever.
      const timer = setTimeout(() => reject(new Error(`FUSE mount on ${target} not ready after ${timeoutMs} ms`)), timeoutMs);
      fuse.mount((err) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      });
    });
  } catch (err) {
    // The kernel mount may exist even though libfuse failed afterwards.
    await detachMount(target, logger).catch((detachErr: unknown) =>
      logger.error({ mountpoint: target, err: detachErr }, 'could not remove a half-made FUSE mount'),
    );
    throw new Error(`mounting layer on ${target} failed: ${(err as Error).message}`, { cause: err });
  }
  logger.info({ mountpoint: target, options: mountOptions }, 'layer mounted');

  let unmounting: Promise<void> | undefined;
  let unmounted = false;
  return {
    mountpoint: target,
    unmount(): Promise<void> {
      if (unmounted) return Promise.resolve();
      unmounting ??= new Promise<void>((resolve, reject) => {
        fuse.unmount((err) => (err ? reject(err) : resolve()));
      }).then(
        () => {
          unmounted = true;
          logger.info({ mountpoint: target }, 'layer unmounted');
        },
        (err: unknown) => {
          unmounting = undefined; // let the caller retry
          logger.error({ mountpoint: target, err }, 'unmounting layer failed');
          throw err;
        },
      );
      return unmounting;
    },
  };
}
