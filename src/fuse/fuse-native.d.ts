// Minimal types for fuse-native 2.2.6 (the package ships none), covering only
// what src/fuse uses. Handler signatures follow node_modules/fuse-native/index.js
// (the `_op_*` glue), which is what actually calls them; where its README
// disagrees (fsync argument order), the code wins.
declare module 'fuse-native' {
  namespace Fuse {
    /** A result code: 0 or a positive count for success, a negative errno for failure. */
    type Done = (code: number) => void;

    /** What getattr hands back; fuse-native packs it into a struct stat. */
    interface Stat {
      mode: number;
      uid: number;
      gid: number;
      size: number;
      dev?: number;
      nlink: number;
      ino: number;
      rdev: number;
      blksize: number;
      blocks: number;
      /** fuse-native turns a falsy time into "now", so always pass a Date. */
      atime: Date;
      mtime: Date;
      ctime: Date;
    }

    interface Statfs {
      bsize: number;
      frsize: number;
      blocks: number;
      bfree: number;
      bavail: number;
      files: number;
      ffree: number;
      favail: number;
      fsid: number;
      flag: number;
      namemax: number;
    }

    interface Operations {
      init?(cb: Done): void;
      access?(path: string, mode: number, cb: Done): void;
      statfs?(path: string, cb: (code: number, statfs?: Statfs) => void): void;
      getattr?(path: string, cb: (code: number, stat?: Stat) => void): void;
      flush?(path: string, fd: number, cb: Done): void;
      fsync?(path: string, datasync: number, fd: number, cb: Done): void;
      fsyncdir?(path: string, datasync: number, fd: number, cb: Done): void;
      readdir?(path: string, cb: (code: number, names?: string[], stats?: Stat[]) => void): void;
      truncate?(path: string, size: number, cb: Done): void;
      ftruncate?(path: string, fd: number, size: number, cb: Done): void;
      utimens?(path: string, atime: number, mtime: number, cb: Done): void;
      readlink?(path: string, cb: (code: number, target?: string) => void): void;
      chown?(path: string, uid: number, gid: number, cb: Done): void;
      chmod?(path: string, mode: number, cb: Done): void;
      mknod?(path: string, mode: number, dev: number, cb: Done): void;
      setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Done): void;
      getxattr?(path: string, name: string, position: number, cb: (code: number, value?: Buffer | null) => void): void;
      listxattr?(path: string, cb: (code: number, names?: string[]) => void): void;
      removexattr?(path: string, name: string, cb: Done): void;
      open?(path: string, flags: number, cb: (code: number, fd?: number) => void): void;
      opendir?(path: string, flags: number, cb: (code: number, fd?: number) => void): void;
      /** cb(bytesRead) on success: the count is the code. */
      read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Done): void;
      write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Done): void;
      release?(path: string, fd: number, cb: Done): void;
      releasedir?(path: string, fd: number, cb: Done): void;
      create?(path: string, mode: number, cb: (code: number, fd?: number) => void): void;
      unlink?(path: string, cb: Done): void;
      rename?(src: string, dest: string, cb: Done): void;
      link?(src: string, dest: string, cb: Done): void;
      symlink?(src: string, dest: string, cb: Done): void;
      mkdir?(path: string, mode: number, cb: Done): void;
      rmdir?(path: string, cb: Done): void;
    }

    interface Options {
      /** Per-op timeout in ms turning a slow op into ETIMEDOUT; false disables it. */
      timeout?: number | false;
      debug?: boolean;
      force?: boolean;
      mkdir?: boolean;
      allowOther?: boolean;
      defaultPermissions?: boolean;
      fsname?: string;
      subtype?: string;
      kernelCache?: boolean;
      entryTimeout?: number;
      attrTimeout?: number;
    }

    /** The native completion fuse-native passes to its `_op_*` glue methods. */
    type Signal = (code: number, ...rest: unknown[]) => void;
  }

  class Fuse {
    constructor(mnt: string, ops: Fuse.Operations, opts?: Fuse.Options);
    readonly mnt: string;
    readonly opts: Fuse.Options;
    readonly ops: Fuse.Operations;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;

    // Internals overridden or used by src/fuse/layer-fuse.ts (pinned to 2.2.6).
    protected _thread: Buffer | null;
    protected _openCallback: ((err: Error | null) => void) | null;
    protected _handlers: unknown[];
    protected _malloc(size: number): Buffer;
    protected _getImplementedArray(): Uint32Array;
    protected _open(cb: (err: Error | null) => void): void;
    protected _fuseOptions(): string;
    protected _close(cb: (err: Error | null) => void): void;
    protected _op_getxattr(signal: Fuse.Signal, path: string, name: string, valueBuf: Buffer, position: number): void;
    protected _op_listxattr(signal: Fuse.Signal, path: string, listBuf: Buffer): void;
  }

  export = Fuse;
}
