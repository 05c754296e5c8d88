// fuse-native's Fuse class with the few internals lazysnap needs changed.
// fuse-native is pinned at 2.2.6 in package.json; these overrides are written
// against that version's index.js and must be re-checked on any upgrade.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import Fuse from 'fuse-native';
import { detachMount } from './detach.js';
import * as errno from './errno.js';
import type { FuseLogger } from './logger.js';

interface NativeBinding {
  sizeof_fuse_thread_t: number;
  fuse_native_mount(mountpoint: string, options: string, thread: Buffer, fuse: Fuse, malloc: (size: number) => Buffer, handlers: unknown[], implemented: Uint32Array): void;
  fuse_native_unmount(mountpoint: string, thread: Buffer): void;
}

// The addon fuse-native itself loads, found the same way its index.js does
// (node-gyp-build from fuse-native's directory). require() caches native
// modules by file name, so this is the very same binding object.
const fuseNativeMain = createRequire(import.meta.url).resolve('fuse-native');
const loadAddon = createRequire(fuseNativeMain)('node-gyp-build') as (dir: string) => NativeBinding;
const binding = loadAddon(dirname(fuseNativeMain));

export interface LayerFuseOptions {
  /** libfuse -o options, already validated (see mount-options.ts). */
  mountOptions: string[];
  logger: FuseLogger;
}

export class LayerFuse extends Fuse {
  private readonly mountOptions: string[];
  private readonly logger: FuseLogger;

  constructor(mountpoint: string, ops: Fuse.Operations, options: LayerFuseOptions) {
    // timeout: false. fuse-native otherwise wraps every op in a 15 s timer
    // that answers ETIMEDOUT while our handler is still running; a read that
    // waits on a slow registry must finish, and LayerContent.read has its
    // own deadline after which it rejects (answered as EIO).
    super(mountpoint, ops, { timeout: false });
    this.mountOptions = options.mountOptions;
    this.logger = options.logger;
  }

  /**
   * use_ino (and ro, suid, negative_timeout) are not among the camel-cased
   * options fuse-native 2.2.6 translates: its _fuseOptions() knows a fixed
   * list and joins it into one "-oa,b,c" argument for fuse_mount/fuse_new.
   * A value with a comma in it (fsname: 'lazysnap,use_ino') would smuggle
   * extra options through that join, but only by accident of its
   * implementation; replacing the method states the whole option string in
   * one place instead.
   */
  protected override _fuseOptions(): string {
    const joined = this.mountOptions.join(',');
    // The native side copies the string into a 1024-byte buffer.
    if (joined.length > 1000) throw new Error(`FUSE options too long (${joined.length} bytes)`);
    return joined ? `-o${joined}` : '';
  }

  /**
   * fuse-native's version always copies the value and returns its full
   * length: when the caller's buffer is smaller (python's os.getxattr starts
   * with 128 bytes), libfuse then replies with more bytes than were asked
   * for, reading past its own buffer, and the kernel rejects the reply
   * (the caller sees EIO instead of ERANGE and never retries larger).
   * getxattr(2) convention: size 0 asks for the length; too small is ERANGE.
   */
  protected override _op_getxattr(signal: Fuse.Signal, path: string, name: string, valueBuf: Buffer, position: number): void {
    if (!this.ops.getxattr) return signal(errno.ENODATA, valueBuf.buffer);
    this.ops.getxattr(path, name, position, (code, value) => {
      if (code < 0) return signal(code, valueBuf.buffer);
      if (!value) return signal(errno.ENODATA, valueBuf.buffer);
      if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer);
      if (value.length > valueBuf.length) return signal(errno.ERANGE, valueBuf.buffer);
      value.copy(valueBuf);
      return signal(value.length, valueBuf.buffer);
    });
  }

  /**
   * Same problem for listxattr: fuse-native writes names past a too-small
   * buffer's end and reports the full length. Names are NUL-terminated and
   * concatenated; size 0 asks for the length; too small is ERANGE.
   */
  protected override _op_listxattr(signal: Fuse.Signal, path: string, listBuf: Buffer): void {
    if (!this.ops.listxattr) return signal(0, listBuf.buffer);
    this.ops.listxattr(path, (code, names) => {
      if (code < 0) return signal(code, listBuf.buffer);
      const list = Buffer.concat((names ?? []).map((n) => Buffer.from(`${n}\0`, 'utf8')));
      if (listBuf.length === 0) return signal(list.length, listBuf.buffer);
      if (list.length > listBuf.length) return signal(errno.ERANGE, listBuf.buffer);
      list.copy(listBuf);
      return signal(list.length, listBuf.buffer);
    });
  }

  /**
   * fuse-native's open first stats the mountpoint and its parent, two trips
   * through libuv's thread pool, to check what mountLayer has checked already
   * (a directory, with nothing mounted on it). While an image's layers open,
   * that pool is busy inflating their TOCs, and the first layer's mount, the
   * one its Prepare waits for, queued behind them. The mount itself is the
   * same call: the native side mounts and starts the FUSE thread, and the
   * callback runs when the kernel's INIT arrives (fuse-native's _op_init).
   */
  protected override _open(cb: (err: Error | null) => void): void {
    this._thread = Buffer.alloc(binding.sizeof_fuse_thread_t);
    this._openCallback = cb;
    try {
      binding.fuse_native_mount(this.mnt, this._fuseOptions(), this._thread, this, this._malloc, this._handlers, this._getImplementedArray());
    } catch (err) {
      this._openCallback = null;
      cb(err as Error);
    }
  }

  /**
   * fuse-native's close runs `fusermount -uz` and, only if that exits 0,
   * releases the native handle that keeps the event loop alive. A mount
   * someone already removed (an operator, cleanupStaleMounts) or a machine
   * without fusermount would leave the handle referenced and the process
   * unable to exit. detachMount checks the kernel's mount table instead and
   * falls back to umount -l.
   */
  protected override _close(cb: (err: Error | null) => void): void {
    detachMount(this.mnt, this.logger).then(
      () => {
        try {
          if (this._thread) binding.fuse_native_unmount(this.mnt, this._thread);
        } catch (err) {
          return cb(err as Error);
        }
        cb(null);
      },
      (err: Error) => cb(err),
    );
  }
}
