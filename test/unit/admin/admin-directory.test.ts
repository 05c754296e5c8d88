// The links daemons leave for `lazysnap pull` (src/admin/admin-directory.ts):
// the CLI must find every live daemon's admin socket, the newest first, and
// a daemon that stops must take back its own link and no other.
import assert from 'node:assert/strict';
import { readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { adminDirectory, advertiseAdminSocket, advertisedAdminSockets, DEFAULT_ADMIN_DIRECTORY } from '../../../src/admin/admin-directory.js';
import { makeTempDir, removeTree } from '../../harness/process.js';

let work: string;

before(() => {
  work = makeTempDir('admin-directory');
});
after(() => removeTree(work));

const targets = async (dir: string): Promise<string[]> => (await advertisedAdminSockets(dir)).map((link) => readlinkSync(link));

describe('advertised admin sockets', () => {
  it('lists each advertised socket once, the most recently advertised first, in a directory only root can read', async () => {
    const dir = join(work, 'order');
    await advertiseAdminSocket(dir, '/run/a/lazysnap.sock.admin');
    await new Promise((resolve) => setTimeout(resolve, 20));
    await advertiseAdminSocket(dir, '/run/b/lazysnap.sock.admin');
    await new Promise((resolve) => setTimeout(resolve, 20));
    // A daemon restarted on the first socket replaces its old link and is now the newest.
    await advertiseAdminSocket(dir, '/run/a/lazysnap.sock.admin');
    writeFileSync(join(dir, 'notes.txt'), 'not a link');
    writeFileSync(join(dir, 'stray.sock'), 'a file, not a link');
    assert.deepEqual(await targets(dir), ['/run/a/lazysnap.sock.admin', '/run/b/lazysnap.sock.admin']);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
  });

  it("withdraws a daemon's own link only, and twice is harmless", async () => {
    const dir = join(work, 'withdraw');
    const withdrawB = await advertiseAdminSocket(dir, '/run/b/lazysnap.sock.admin');
    await advertiseAdminSocket(dir, '/run/c/lazysnap.sock.admin');
    await withdrawB();
    assert.deepEqual(await targets(dir), ['/run/c/lazysnap.sock.admin']);
    await withdrawB();
    assert.deepEqual(await targets(dir), ['/run/c/lazysnap.sock.admin']);
  });

  it('finds none where no daemon advertised, and the directory can be moved for a whole installation', async () => {
    assert.deepEqual(await advertisedAdminSockets(join(work, 'missing')), []);
    assert.equal(adminDirectory({}), DEFAULT_ADMIN_DIRECTORY);
    assert.equal(adminDirectory({ LAZYSNAP_ADMIN_DIRECTORY: '/var/run/other' }), '/var/run/other');
  });
});
