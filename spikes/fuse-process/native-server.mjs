// Process A: serves one file over fuse-native at argv[2] until killed.
// Usage: node native-server.mjs MOUNTPOINT [busyAfterMs]
import Fuse from 'fuse-native';

const mnt = process.argv[2];
const content = Buffer.from('hello from fuse-native\n');
const now = new Date();
const dir = { mode: 0o40755, uid: 0, gid: 0, size: 4096, nlink: 2, ino: 1, rdev: 0, blksize: 4096, blocks: 8, atime: now, mtime: now, ctime: now };
const file = { ...dir, mode: 0o100644, size: content.length, nlink: 1, ino: 2 };
const ops = {
  readdir: (p, cb) => (p === '/' ? cb(0, ['hello']) : cb(Fuse.ENOENT)),
  getattr: (p, cb) => (p === '/' ? cb(0, dir) : p === '/hello' ? cb(0, file) : cb(Fuse.ENOENT)),
  open: (p, flags, cb) => cb(0, 42),
  release: (p, fd, cb) => cb(0),
  read: (p, fd, buf, len, pos, cb) => {
    const part = content.subarray(pos, pos + len);
    part.copy(buf);
    cb(part.length);
  },
};
// attr/entry timeouts 0 so every stat goes to the server (we want to see it answer).
const fuse = new Fuse(mnt, ops, { timeout: false, allowOther: true, attrTimeout: 0, entryTimeout: 0 });
fuse.mount((err) => {
  if (err) { console.error('mount failed', err); process.exit(1); }
  console.log(`A pid=${process.pid} serving ${mnt}`);
  if (process.send) process.send('ready');
  const busyAfter = Number(process.argv[3] ?? 0);
  if (busyAfter > 0) setTimeout(() => { console.log('A: blocking event loop'); const end = Date.now() + 1e9; while (Date.now() < end); }, busyAfter);
});
