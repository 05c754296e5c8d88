// Just enough of the FUSE wire protocol (linux/fuse.h, 7.x) to serve a flat,
// read-only directory of files from a raw /dev/fuse fd. Spike code.
export const OP = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, READLINK: 5, OPEN: 14, READ: 15, STATFS: 17, RELEASE: 18,
  GETXATTR: 22, LISTXATTR: 23, FLUSH: 25, INIT: 26, OPENDIR: 27, READDIR: 28, RELEASEDIR: 29,
  ACCESS: 34, INTERRUPT: 36, DESTROY: 38, BATCH_FORGET: 42, READDIRPLUS: 44, STATX: 52,
};
export const NAMES = Object.fromEntries(Object.entries(OP).map(([k, v]) => [v, k]));
export const ENOENT = 2, EIO = 5, EAGAIN = 11, ENOSYS = 38, ENODATA = 61;
const IN_HEADER = 40, OUT_HEADER = 16;
// Requests the kernel does not want an answer to.
const NO_REPLY = new Set([OP.FORGET, OP.BATCH_FORGET, OP.INTERRUPT]);
// FUSE_INIT flags we ask for: none of the fancy ones (no readdirplus, no
// splice); FUSE_ASYNC_READ (1<<0) lets the kernel send parallel READs.
const FUSE_ASYNC_READ = 1, FUSE_INIT_EXT = 1 << 30, FUSE_REQUEST_TIMEOUT_FLAGS2 = 1 << (42 - 32);
export const MAX_WRITE = 128 * 1024;
export const READ_BUFFER = MAX_WRITE + 4096; // the kernel wants >= max_write + headers

export function parseHeader(buf) {
  return {
    len: buf.readUInt32LE(0), opcode: buf.readUInt32LE(4), unique: buf.readBigUInt64LE(8),
    nodeid: buf.readBigUInt64LE(16), uid: buf.readUInt32LE(24), gid: buf.readUInt32LE(28), pid: buf.readUInt32LE(32),
    body: buf.subarray(IN_HEADER, buf.readUInt32LE(0)),
  };
}

export function reply(unique, error, payload = Buffer.alloc(0)) {
  const out = Buffer.alloc(OUT_HEADER + (error ? 0 : payload.length));
  out.writeUInt32LE(out.length, 0);
  out.writeInt32LE(error ? -error : 0, 4);
  out.writeBigUInt64LE(unique, 8);
  if (!error) payload.copy(out, OUT_HEADER);
  return out;
}

function attr(node) {
  const a = Buffer.alloc(88);
  a.writeBigUInt64LE(BigInt(node.ino), 0);
  a.writeBigUInt64LE(BigInt(node.size), 8);
  a.writeBigUInt64LE(BigInt(Math.ceil(node.size / 512)), 16);
  a.writeUInt32LE(node.mode, 60); // after ino,size,blocks,atime,mtime,ctime (48) + 3 nsec (12)
  a.writeUInt32LE(node.mode & 0o40000 ? 2 : 1, 64); // nlink
  a.writeUInt32LE(4096, 80); // blksize
  return a;
}

function entryOut(node, ttl) {
  const e = Buffer.alloc(40);
  e.writeBigUInt64LE(BigInt(node.ino), 0);
  e.writeBigUInt64LE(BigInt(ttl), 16);
  e.writeBigUInt64LE(BigInt(ttl), 24);
  return Buffer.concat([e, attr(node)]);
}

function attrOut(node, ttl) {
  const o = Buffer.alloc(16);
  o.writeBigUInt64LE(BigInt(ttl), 0);
  return Buffer.concat([o, attr(node)]);
}

function dirents(entries, fromOffset, maxBytes) {
  const parts = [];
  let used = 0;
  entries.forEach((e, i) => {
    if (i < fromOffset || used < 0) return;
    const name = Buffer.from(e.name);
    const d = Buffer.alloc(24 + Math.ceil(name.length / 8) * 8);
    d.writeBigUInt64LE(BigInt(e.ino), 0);
    d.writeBigUInt64LE(BigInt(i + 1), 8); // offset of the *next* entry
    d.writeUInt32LE(name.length, 16);
    d.writeUInt32LE(e.mode & 0o40000 ? 4 : 8, 20); // DT_DIR / DT_REG
    name.copy(d, 24);
    if (used + d.length > maxBytes) { used = -1; return; } // the rest on the next READDIR
    used += d.length;
    parts.push(d);
  });
  return Buffer.concat(parts);
}

/**
 * A read-only tree: root (ino 1) holding files. files: Map name -> { ino, read(offset, size) -> Buffer|Promise<Buffer>, size }.
 * handle() returns the reply Buffer, a Promise of it, or null for no reply.
 * options.requestTimeoutSec asks the kernel (6.14+) to abort the connection if
 * any request stays unanswered that long.
 */
export function createTree(files, options = {}) {
  const ttl = options.ttl ?? 0;
  const root = { ino: 1, mode: 0o40755, size: 4096 };
  const byIno = new Map([[1, root]]);
  for (const [, f] of files) byIno.set(f.ino, { ...f, mode: 0o100644 });
  const listing = () => [{ name: '.', ...root }, { name: '..', ...root }, ...[...files].map(([name, f]) => ({ name, ...f, mode: 0o100644 }))];
  return function handle(req, log = () => {}) {
    const { opcode, unique, nodeid, body } = req;
    if (NO_REPLY.has(opcode)) return null;
    const node = byIno.get(Number(nodeid));
    switch (opcode) {
      case OP.INIT: {
        const major = body.readUInt32LE(0), minor = body.readUInt32LE(4), maxReadahead = body.readUInt32LE(8);
        const kflags = body.readUInt32LE(12), kflags2 = body.length >= 20 ? body.readUInt32LE(16) : 0;
        log(`INIT kernel ${major}.${minor} flags=0x${kflags.toString(16)} flags2=0x${kflags2.toString(16)}`);
        const out = Buffer.alloc(64);
        out.writeUInt32LE(7, 0);
        out.writeUInt32LE(Math.min(minor, 43), 4);
        out.writeUInt32LE(maxReadahead, 8);
        let flags = FUSE_ASYNC_READ & kflags, flags2 = 0;
        if (options.requestTimeoutSec && (kflags & FUSE_INIT_EXT) && (kflags2 & FUSE_REQUEST_TIMEOUT_FLAGS2)) {
          flags |= FUSE_INIT_EXT; flags2 |= FUSE_REQUEST_TIMEOUT_FLAGS2;
          out.writeUInt16LE(options.requestTimeoutSec, 40); // request_timeout (after flags2 @32, max_stack_depth @36)
        }
        out.writeUInt32LE(flags, 12);
        out.writeUInt16LE(12, 16); // max_background
        out.writeUInt16LE(10, 18); // congestion_threshold
        out.writeUInt32LE(MAX_WRITE, 20);
        out.writeUInt32LE(1, 24); // time_gran
        out.writeUInt32LE(flags2, 32);
        return reply(unique, 0, out);
      }
      case OP.LOOKUP: {
        const name = body.subarray(0, body.indexOf(0)).toString();
        const f = Number(nodeid) === 1 ? files.get(name) : undefined;
        return f ? reply(unique, 0, entryOut({ ...f, mode: 0o100644 }, ttl)) : reply(unique, ENOENT);
      }
      case OP.GETATTR: return node ? reply(unique, 0, attrOut(node, ttl)) : reply(unique, ENOENT);
      case OP.OPEN: case OP.OPENDIR: return reply(unique, 0, Buffer.alloc(16)); // fh 0, no open flags
      case OP.RELEASE: case OP.RELEASEDIR: case OP.FLUSH: case OP.ACCESS: return reply(unique, 0);
      case OP.READDIR: {
        const offset = Number(body.readBigUInt64LE(8)), size = body.readUInt32LE(16);
        return reply(unique, 0, dirents(listing(), offset, size));
      }
      case OP.READ: {
        const offset = Number(body.readBigUInt64LE(8)), size = body.readUInt32LE(16);
        if (!node || !node.read) return reply(unique, EIO);
        const data = node.read(offset, size);
        return data instanceof Promise ? data.then((d) => reply(unique, 0, d), (err) => { log(`READ ${node.ino} failed: ${err.message}`); return reply(unique, EIO); }) : reply(unique, 0, data);
      }
      case OP.STATFS: { const s = Buffer.alloc(80); s.writeUInt32LE(4096, 40); s.writeUInt32LE(255, 44); s.writeUInt32LE(4096, 48); return reply(unique, 0, s); }
      case OP.GETXATTR: return reply(unique, ENODATA);
      case OP.LISTXATTR: return reply(unique, 0, body.readUInt32LE(0) === 0 ? Buffer.alloc(8) : Buffer.alloc(0)); // size query: fuse_getxattr_out{0}
      default: return reply(unique, ENOSYS);
    }
  };
}
