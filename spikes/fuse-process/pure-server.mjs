// A FUSE server in pure Node (no libfuse): the /dev/fuse fd is read and
// written from a worker thread, so the main thread's event loop can be
// blocked without stalling answers. Spike code.
//
//   node pure-server.mjs mount MOUNTPOINT [deadlineMs] [requestTimeoutSec]
//       opens /dev/fuse, mounts with mount(8) -i (plain mount(2), fd=3), serves.
//   node pure-server.mjs adopt MOUNTPOINT [deadlineMs]     (fd 3 inherited: a live, initialised connection)
//
// Files: /cached (answered by the worker from memory), /remote (the worker
// asks the main thread, as if it had to fetch; EIO after deadlineMs).
// Signals: SIGUSR1 blocks the main thread for 8 s ("busy daemon").
//          SIGUSR2 hands the connection to a successor (see handoff below) and exits.
//          SIGHUP: the worker stops answering /remote at all (to hold a request in flight).
import { spawn, spawnSync } from 'node:child_process';
import { openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

const [mode, mountpoint, deadlineArg, timeoutArg] = process.argv.slice(2);
const deadlineMs = Number(deadlineArg ?? 2000);
const log = (m) => console.log(`[${new Date().toISOString().slice(11, 23)} ${mode} ${process.pid}] ${m}`);

let fd;
if (mode === 'mount') {
  fd = openSync('/dev/fuse', 'r+');
  const opts = `fd=3,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions,ro`;
  // -i: no /sbin/mount.fuse helper, just mount(2). The mount returns before
  // INIT is answered; the kernel queues INIT for whoever reads the fd first.
  const r = spawnSync('mount', ['-i', '-t', 'fuse.spike', '-o', opts, 'spike', mountpoint], { stdio: ['ignore', 'inherit', 'inherit', fd] });
  if (r.status !== 0) { log(`mount failed: ${r.status}`); process.exit(1); }
  log(`mounted ${mountpoint} fd=${fd}`);
} else {
  fd = 3;
  log(`adopting fd 3 for ${mountpoint}`);
}

const worker = new Worker(new URL('./pure-worker.mjs', import.meta.url), {
  workerData: { fd, deadlineMs, expectInit: mode === 'mount', requestTimeoutSec: Number(timeoutArg ?? 0) },
});
worker.on('message', (m) => {
  if (m.log) return log(`worker: ${m.log}`);
  if (m.fetch) { // pretend to fetch: 20 ms, then answer
    setTimeout(() => worker.postMessage({ id: m.id, data: Buffer.from(`remote bytes @${m.offset}\n`).subarray(0, m.size) }), 20);
  }
});
worker.on('error', (e) => log(`worker error ${e.stack}`));

process.on('SIGUSR1', () => { log('main thread busy for 8 s'); const end = Date.now() + 8000; while (Date.now() < end); log('main thread free'); });
process.on('SIGHUP', () => worker.postMessage({ swallowRemote: true }));
process.on('SIGUSR2', () => {
  // Handoff: the successor inherits the same open file (stdio slot 3), or, if
  // HANDOFF=clone, a fresh /dev/fuse file bound to the same connection by
  // FUSE_DEV_IOC_CLONE (clone-fd.py). We stop reading first so no request is
  // taken by us after the successor starts.
  worker.postMessage({ stop: true });
  const self = fileURLToPath(import.meta.url);
  const cmd = process.env.HANDOFF === 'clone'
    ? ['python3', [fileURLToPath(new URL('./clone-fd.py', import.meta.url)), process.execPath, self, 'adopt', mountpoint, String(deadlineMs)]]
    : [process.execPath, [self, 'adopt', mountpoint, String(deadlineMs)]];
  const child = spawn(cmd[0], cmd[1], { detached: true, stdio: ['ignore', 'inherit', 'inherit', fd] });
  log(`handed fd to successor pid ${child.pid} (${process.env.HANDOFF ?? 'inherit'})`);
  child.unref();
  setTimeout(() => process.exit(0), 200);
});
