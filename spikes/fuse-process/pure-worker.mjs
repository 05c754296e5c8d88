// The worker thread that owns the /dev/fuse fd: reads requests, answers them.
import { read, writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { createTree, parseHeader, NAMES, READ_BUFFER, EIO } from './fuse-wire.mjs';

const { fd, deadlineMs, requestTimeoutSec } = workerData;
const log = (m) => parentPort.postMessage({ log: m });
const cached = Buffer.from('cached bytes, answered by the FUSE thread itself\n');
let nextId = 0, swallowRemote = false, stopped = false;
const waiting = new Map();
parentPort.on('message', (m) => {
  if (m.stop) { stopped = true; return; }
  if (m.swallowRemote) { swallowRemote = true; return; }
  waiting.get(m.id)?.(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength)); // structured clone gives a Uint8Array
});

// /remote: ask the main thread; whatever happens there, answer within the deadline.
function remoteRead(offset, size) {
  if (offset >= 4096) return Buffer.alloc(0);
  if (swallowRemote) return new Promise(() => {});
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { waiting.delete(id); reject(new Error(`no answer from main thread in ${deadlineMs} ms`)); }, deadlineMs);
    waiting.set(id, (data) => { clearTimeout(timer); waiting.delete(id); resolve(data); });
    parentPort.postMessage({ fetch: true, id, offset, size });
  });
}

const handle = createTree(new Map([
  ['cached', { ino: 2, size: cached.length, read: (o, s) => cached.subarray(o, o + s) }],
  ['remote', { ino: 3, size: 4096, read: remoteRead }],
]), { requestTimeoutSec });

const counts = {};
function send(out) {
  try { writeSync(fd, out); } catch (e) { log(`write failed: ${e.code}`); }
}
// Reads run on libuv's thread pool (a blocking read of /dev/fuse parks one
// pool thread until a request arrives); two loops let a second request in
// while the first is being answered.
function loop() {
  if (stopped) return;
  const buf = Buffer.allocUnsafe(READ_BUFFER);
  read(fd, buf, 0, buf.length, null, (err, n) => {
    if (err) { log(`read: ${err.code}`); if (err.code === 'ENODEV') return; return setTimeout(loop, 100); }
    if (stopped) { log('read a request after stop!'); }
    const req = parseHeader(buf.subarray(0, n));
    const name = NAMES[req.opcode] ?? req.opcode;
    counts[name] = (counts[name] ?? 0) + 1;
    if (req.opcode === 26) log(`got INIT`);
    const out = handle(req, log);
    if (out instanceof Promise) out.then(send); else if (out) send(out);
    loop();
  });
}
loop(); loop();
setInterval(() => log(`ops so far ${JSON.stringify(counts)}`), 5000).unref();
