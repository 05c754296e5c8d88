// The admin socket: root's alone (0600, refused to another uid even when the
// directory lets it through), JSON status over GET, read-only, gone on close.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AdminServer, adminSocketPath, fetchStatus } from '../../../src/admin/index.js';
import { makeTempDir, removeTree } from '../../harness/process.js';

let dir: string;
let server: AdminServer;
const socket = () => adminSocketPath(join(dir, 'lazysnap.sock'));

before(async () => {
  dir = makeTempDir('admin-server');
  // Others may pass through the directory, as through /run/lazysnap (0711): only the socket's own mode keeps them out.
  chmodSync(dir, 0o711);
  server = await AdminServer.listen(socket(), { status: async () => ({ version: 'test', layers: [] }) });
});

after(async () => {
  await server.close();
  removeTree(dir);
});

/** Runs a command to its end without blocking the event loop (the server answers from this process). */
function run(command: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => {
      const status = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ status, stdout, stderr });
    });
  });
}

/** GET path on the socket as the given uid (via setpriv), with curl: what a user on the node could try. */
function curlAs(uid: number, path: string, extra: string[] = []) {
  return run('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'curl', '-sS', ...extra, '--unix-socket', socket(), `http://admin${path}`]);
}

describe('admin server', () => {
  it('is sitting at <address>.admin with mode 0600, owned by root', () => {
    assert.equal(socket(), join(dir, 'lazysnap.sock.admin'));
    const info = statSync(socket());
    assert.ok(info.isSocket());
    assert.equal(info.mode & 0o777, 0o600);
    assert.equal(info.uid, 0);
  });

  it('answers root with the status as JSON', async () => {
    assert.deepEqual(await fetchStatus(socket()), { version: 'test', layers: [] });
    assert.match((await curlAs(0, '/status')).stdout, /"version": "test"/);
  });

  it('refuses a non-root uid (65534)', async () => {
    const result = await curlAs(65534, '/status');
    assert.notEqual(result.status, 0);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /Permission denied|Couldn't connect/i);
  });

  it('the status command tells a non-root user why it cannot ask', async () => {
    const cli = join(import.meta.dirname, '..', '..', '..', 'src', 'cli', 'main.js');
    const result = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cli, 'status', '--config', '/dev/null', '--address', join(dir, 'lazysnap.sock')]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /permission denied on .*lazysnap\.sock\.admin: the admin socket is root's alone/);
  });

  it('is read-only and knows one path', async () => {
    assert.match((await curlAs(0, '/status', ['-X', 'POST'])).stdout, /not allowed/);
    assert.match((await curlAs(0, '/metrics')).stdout, /try GET \/status/);
  });

  it('says plainly when no daemon answers', async () => {
    await assert.rejects(fetchStatus(join(dir, 'nobody.sock.admin')), /no lazysnap daemon answers on .*nobody\.sock\.admin/);
  });

  it('removes its socket when closed', async () => {
    const other = await AdminServer.listen(join(dir, 'other.sock.admin'), { status: async () => ({}) });
    await other.close();
    assert.equal(existsSync(join(dir, 'other.sock.admin')), false);
  });
});
