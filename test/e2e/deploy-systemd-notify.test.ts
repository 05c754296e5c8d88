// systemd's Type=notify: lazysnap.service is ordered Before=containerd.service,
// which only means "the socket answers" if READY=1 is sent after the socket
// listens. A python3 datagram listener stands in for systemd's NOTIFY_SOCKET:
// like systemd it reads the sender's credentials, and the moment READY=1
// arrives it tries to connect to the daemon's socket.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CLI_PATH } from '../harness/daemon.js';
import { ManagedProcess, makeTempDir, removeTree, waitUntil } from '../harness/process.js';
import { SnapshotsClient } from '../../src/containerd/snapshots-client.js';

const LISTENER = String.raw`
import json, os, socket, struct, sys
notify_path, daemon_socket = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(notify_path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"bound": True}), flush=True)
while True:
    data, ancillary, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(16 * 4))
    pid = None
    for level, kind, payload in ancillary:
        if kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", payload[:12])[0]
        elif kind == socket.SCM_RIGHTS:
            # systemd closes passed descriptors (a barrier waits for that).
            for fd in struct.unpack("%di" % (len(payload) // 4), payload[: len(payload) // 4 * 4]):
                os.close(fd)
    fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
    answered = None
    if fields.get("READY") == "1":
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(daemon_socket)
            answered = True
        except OSError as e:
            answered = str(e)
        finally:
            probe.close()
    print(json.dumps({"pid": pid, "fields": fields, "socket_answered": answered}), flush=True)
`;

interface Notification {
  pid: number | null;
  fields: Record<string, string>;
  socket_answered: true | string | null;
}

let work: string;
let listener: ChildProcessWithoutNullStreams;
const notifications: Notification[] = [];
let notifySocket: string;
let daemonSocket: string;

before(async () => {
  work = makeTempDir('e2e-deploy-notify');
  notifySocket = join(work, 'notify.sock');
  daemonSocket = join(work, 'lazysnap.sock');
  listener = spawn('/usr/bin/python3', ['-c', LISTENER, notifySocket, daemonSocket]);
  let bound = false;
  createInterface({ input: listener.stdout }).on('line', (line) => {
    const message = JSON.parse(line) as Notification & { bound?: boolean };
    if (message.bound) bound = true;
    else notifications.push(message);
  });
  await waitUntil('the fake NOTIFY_SOCKET listener', () => bound);
});

after(() => {
  listener?.kill('SIGKILL');
  removeTree(work);
});

describe('systemd readiness (Type=notify)', () => {
  it('sends READY=1 from the daemon pid only once its socket answers, and STOPPING=1 on SIGTERM', async () => {
    const daemon = new ManagedProcess(
      process.execPath,
      [CLI_PATH, 'serve', '--address', daemonSocket, '--root', join(work, 'root'), '--config', '/dev/null', '--no-fuse-manager'],
      join(work, 'lazysnap.log'),
      { ...process.env, NOTIFY_SOCKET: notifySocket },
    );
    try {
      await waitUntil('READY=1 on NOTIFY_SOCKET', () => {
        if (!daemon.running) throw new Error(`lazysnap exited; see ${daemon.logPath}`);
        return notifications.some((n) => n.fields['READY'] === '1');
      });
      const ready = notifications.find((n) => n.fields['READY'] === '1')!;
      assert.equal(ready.socket_answered, true, `the socket did not answer when READY=1 arrived: ${String(ready.socket_answered)}`);
      // systemd attributes the message to the unit's main process by these credentials.
      assert.equal(ready.pid, daemon.child.pid);
      assert.equal(ready.fields['MAINPID'], String(daemon.child.pid));
      assert.equal(ready.fields['STATUS'], `serving on ${daemonSocket}`);
      assert.equal(notifications.filter((n) => n.fields['STOPPING'] === '1').length, 0);

      const client = new SnapshotsClient({ address: daemonSocket, timeoutMs: 10_000 });
      try {
        assert.deepEqual(await client.list([]), []);
      } finally {
        client.close();
      }

      daemon.child.kill('SIGTERM');
      assert.equal(await daemon.waitExit(), 0);
      await waitUntil('STOPPING=1 on NOTIFY_SOCKET', () => notifications.some((n) => n.fields['STOPPING'] === '1'));
      assert.equal(notifications.find((n) => n.fields['STOPPING'] === '1')!.pid, daemon.child.pid);
    } finally {
      await daemon.stop();
    }
  });

  it('keeps serving and logs why when NOTIFY_SOCKET cannot be reached', async () => {
    const dir = join(work, 'unreachable');
    const address = join(dir, 'lazysnap.sock');
    const daemon = new ManagedProcess(
      process.execPath,
      [CLI_PATH, 'serve', '--address', address, '--root', join(dir, 'root'), '--config', '/dev/null', '--no-fuse-manager'],
      join(work, 'unreachable.log'),
      { ...process.env, NOTIFY_SOCKET: join(work, 'nobody-listens.sock') },
    );
    try {
      await waitUntil('the notify failure in the log', () => {
        if (!daemon.running) throw new Error(`lazysnap exited; see ${daemon.logPath}`);
        return readFileSync(daemon.logPath, 'utf8').includes('could not tell systemd the daemon is ready');
      });
      assert.match(readFileSync(daemon.logPath, 'utf8'), /NOTIFY_SOCKET \S*nobody-listens\.sock/);
      const client = new SnapshotsClient({ address, timeoutMs: 10_000 });
      try {
        assert.deepEqual(await client.list([]), []);
      } finally {
        client.close();
      }
    } finally {
      await daemon.stop();
    }
  });
});
