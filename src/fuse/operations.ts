// The FUSE handlers: a read-only view of a LayerContent, in fuse-native's
// callback conventions (negative errno, or 0 / a byte count on success).
import { constants } from 'node:fs';
import { posix } from 'node:path';
import type Fuse from 'fuse-native';
import { BLOCK_SIZE, nodeStat } from './attributes.js';
import * as errno from './errno.js';
import { FileHandles } from './handles.js';
import type { FuseLogger } from './logger.js';
import type { FsNode, LayerContent } from './types.js';

/** The handlers plus the open-file table, which tests inspect. */
export interface LayerOperations extends Fuse.Operations {
  readonly handles: FileHandles;
}

/**
 * Told of every answered request: the operation, how long it took from the
 * handler's start to its answer, and the answer's code (negative errno, or 0 /
 * a byte count). Runs on the answer path, so it must be cheap (a histogram
 * observe).
 */
export type FuseOperationObserver = (operation: string, seconds: number, code: number, timedOut: boolean) => void;

export interface OperationOptions {
  /** Told of every answered request (metrics). */
  observe?: FuseOperationObserver | undefined;
  /**
   * A request not answered within this many ms is answered EIO (logged,
   * and `timedOut` for the observer); the late result is dropped. Undefined:
   * no bound. A reader cannot be interrupted while its request is in flight,
   * so this is what keeps a slow registry from holding it forever.
   */
  answerTimeoutMs?: number | undefined;
}

export function createOperations(content: LayerContent, logger: FuseLogger, options: OperationOptions = {}): LayerOperations {
  const { observe, answerTimeoutMs } = options;
  const handles = new FileHandles();
  // Paths whose read failure has been logged at error level. The kernel
  // retries a failed page read once and readahead may ask again, so one
  // broken file would otherwise log several errors per read(2); the layer
  // module logs the fetch failure itself.
  const failedReads = new Set<string>();
  let fileCount: number | undefined;

  /**
   * Runs a handler body so that its callback fires exactly once: a handler
   * that throws still answers (EIO) instead of leaving the kernel request,
   * and the FUSE thread waiting on it, stuck forever; a second answer, which
   * would corrupt fuse-native's per-thread state, is dropped. A body that
   * does not answer at once is given answerTimeoutMs, then answered EIO; it
   * must check `answered()` before it touches fuse-native's buffers again.
   */
  function run<R extends unknown[]>(
    op: string,
    path: string,
    cb: (code: number, ...rest: R) => void,
    body: (done: (code: number, ...rest: R) => void, answered: () => boolean) => void,
  ): void {
    let answered = false;
    let deadline: NodeJS.Timeout | undefined;
    const started = observe !== undefined || answerTimeoutMs !== undefined ? performance.now() : 0;
    const answer = (timedOut: boolean, code: number, ...rest: R): void => {
      if (answered) return;
      answered = true;
      if (deadline !== undefined) clearTimeout(deadline);
      cb(code, ...rest);
      observe?.(op, (performance.now() - started) / 1000, code, timedOut);
    };
    const done = (code: number, ...rest: R): void => answer(false, code, ...rest);
    try {
      body(done, () => answered);
    } catch (err) {
      logger.error({ op, path, err }, 'fuse handler threw; answering EIO');
      (done as unknown as Fuse.Done)(errno.EIO);
    }
    if (!answered && answerTimeoutMs !== undefined) {
      deadline = setTimeout(() => {
        logger.warn({ op, path, timeoutMs: answerTimeoutMs }, 'FUSE request not answered in time; answering EIO');
        (answer as unknown as (timedOut: boolean, code: number) => void)(true, errno.EIO);
      }, answerTimeoutMs);
    }
  }

  function readOnly(op: string) {
    // Every mutating handler: the layer is immutable. The mount is also "ro",
    // so the kernel refuses most writes before they get here; these answer
    // whatever still arrives.
    return (...args: unknown[]): void => {
      const cb = args[args.length - 1] as Fuse.Done;
      run(op, String(args[0]), cb, (done) => done(errno.EROFS));
    };
  }

  function parentOf(path: string): FsNode | undefined {
    return content.lookup(path === '/' ? '/' : posix.dirname(path));
  }

  async function readFully(node: FsNode, buf: Buffer, offset: number, length: number, answered: () => boolean): Promise<number> {
    // LayerContent.read may return fewer bytes than asked (say, up to a
    // chunk boundary). A short answer to a FUSE read means EOF and makes the
    // kernel shrink the file's cached size, so keep asking until the range
    // is filled; an empty answer inside the file is an error, not EOF.
    let filled = 0;
    while (filled < length) {
      const chunk = await content.read(node, offset + filled, length - filled);
      if (chunk.length === 0) throw new Error(`layer returned no data at offset ${offset + filled} of ${node.size}`);
      // Answered EIO at the deadline: buf is fuse-native's again, maybe already another request's.
      if (answered()) return filled;
      filled += chunk.copy(buf, filled, 0, Math.min(chunk.length, length - filled));
    }
    return filled;
  }

  const ops: LayerOperations = {
    handles,

    init(cb) {
      cb(0);
    },

    getattr(path, cb) {
      run('getattr', path, cb, (done) => {
        const node = content.lookup(path);
        if (!node) return done(errno.ENOENT);
        done(0, nodeStat(node));
      });
    },

    access(path, mode, cb) {
      // With default_permissions the kernel checks modes itself and rarely
      // calls this; what remains is existence and "no writing here".
      run('access', path, cb, (done) => {
        if (!content.lookup(path)) return done(errno.ENOENT);
        done(mode & constants.W_OK ? errno.EROFS : 0);
      });
    },

    statfs(path, cb) {
      run('statfs', path, cb, (done) => {
        fileCount ??= content.inodeCount ?? countInodes(content.root);
        const blocks = Math.ceil(content.totalSize / BLOCK_SIZE);
        // No free space and no free inodes: nothing can be created here.
        done(0, {
          bsize: BLOCK_SIZE,
          frsize: BLOCK_SIZE,
          blocks,
          bfree: 0,
          bavail: 0,
          files: fileCount,
          ffree: 0,
          favail: 0,
          fsid: 0,
          flag: 0,
          namemax: 255,
        });
      });
    },

    readdir(path, cb) {
      run('readdir', path, cb, (done) => {
        const node = content.lookup(path);
        if (!node) return done(errno.ENOENT);
        if (node.type !== 'dir') return done(errno.ENOTDIR);
        // libfuse's high-level API does not add "." and ".."; readdir(3)
        // users (ls -a, find, some tar versions) expect them.
        const names = ['.', '..'];
        const stats = [nodeStat(node), nodeStat(parentOf(path) ?? node)];
        for (const [name, child] of node.children ?? []) {
          names.push(name);
          // Passing stats lets libfuse fill d_ino (with use_ino) and d_type,
          // so readdir callers see file types without a stat per entry.
          stats.push(nodeStat(child));
        }
        done(0, names, stats);
      });
    },

    readlink(path, cb) {
      run('readlink', path, cb, (done) => {
        const node = content.lookup(path);
        if (!node) return done(errno.ENOENT);
        if (node.type !== 'symlink') return done(errno.EINVAL);
        done(0, node.linkName ?? '');
      });
    },

    open(path, flags, cb) {
      run('open', path, cb, (done) => {
        const node = content.lookup(path);
        if (!node) return done(errno.ENOENT);
        if (flags & (constants.O_WRONLY | constants.O_RDWR | constants.O_TRUNC)) return done(errno.EROFS);
        // The kernel opens devices, fifos and directories without asking us;
        // if one still arrives it is not something we can serve bytes for.
        if (node.type === 'dir') return done(errno.EISDIR);
        if (node.type === 'symlink') return done(errno.ELOOP);
        if (node.type !== 'reg') return done(errno.ENXIO);
        done(0, handles.add(node));
      });
    },

    read(path, fd, buf, len, pos, cb) {
      run('read', path, cb, (done, answered) => {
        const node = handles.get(fd) ?? content.lookup(path);
        if (!node) return done(errno.EBADF);
        if (node.type !== 'reg') return done(errno.EISDIR);
        if (pos >= node.size || len <= 0) return done(0);
        const length = Math.min(len, node.size - pos);
        // fuse-native's per-op timeout is off (see mount.ts): run()'s answer
        // deadline bounds this, and LayerContent.read has its own per fetch.
        readFully(node, buf, pos, length, answered).then(
          (n) => done(n),
          (err: unknown) => {
            if (!failedReads.has(path)) {
              failedReads.add(path);
              logger.error({ path, offset: pos, length, err }, 'layer read failed; answering EIO');
            } else {
              logger.debug({ path, offset: pos, length, err }, 'layer read failed again; answering EIO');
            }
            done(errno.EIO);
          },
        );
      });
    },

    release(path, fd, cb) {
      run('release', path, cb, (done) => {
        handles.delete(fd);
        done(0);
      });
    },

    flush(path, _fd, cb) {
      run('flush', path, cb, (done) => done(0));
    },

    fsync(path, _datasync, _fd, cb) {
      run('fsync', path, cb, (done) => done(0));
    },

    getxattr(path, name, _position, cb) {
      // Returns the whole value; layer-fuse.ts fits it to the caller's
      // buffer (size query, ERANGE), which fuse-native 2.2.6 gets wrong.
      run('getxattr', path, cb, (done) => {
        const node = content.lookup(path);
        if (!node) return done(errno.ENOENT);
        const value = node.xattrs.get(name);
        if (!value) return done(errno.ENODATA);
        done(0, value);
      });
    },

    listxattr(path, cb) {
      run('listxattr', path, cb, (done) => {
        const node = content.lookup(path);
        if (!node) return done(errno.ENOENT);
        done(0, [...node.xattrs.keys()]);
      });
    },

    write: readOnly('write'),
    create: readOnly('create'),
    truncate: readOnly('truncate'),
    ftruncate: readOnly('ftruncate'),
    utimens: readOnly('utimens'),
    chown: readOnly('chown'),
    chmod: readOnly('chmod'),
    mknod: readOnly('mknod'),
    setxattr: readOnly('setxattr'),
    removexattr: readOnly('removexattr'),
    unlink: readOnly('unlink'),
    rename: readOnly('rename'),
    link: readOnly('link'),
    symlink: readOnly('symlink'),
    mkdir: readOnly('mkdir'),
    rmdir: readOnly('rmdir'),
  };
  return ops;
}

/** Distinct inodes in the tree (hardlinks count once), for statfs f_files. */
function countInodes(root: FsNode): number {
  const seen = new Set<number>();
  const stack = [root];
  while (stack.length > 0) {
    const node = stack.pop() as FsNode;
    if (seen.has(node.ino)) continue;
    seen.add(node.ino);
    for (const child of node.children?.values() ?? []) stack.push(child);
  }
  return seen.size;
}
