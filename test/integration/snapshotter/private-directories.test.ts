// Snapshot directories hold image content (setuid binaries included): the
// daemon makes them private at start, whatever an earlier run or an operator
// left behind.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type DaemonInstance } from '../../harness/daemon.js';
import { makeTempDir, removeTree } from '../../harness/process.js';

const NOBODY = 65534;

let work: string;
let daemon: DaemonInstance | undefined;

before(() => {
  work = makeTempDir('private-dirs');
});

after(async () => {
  await daemon?.stop();
  removeTree(work);
});

describe('private snapshot directories', () => {
  it('ROOT/snapshots and ROOT/staging that exist with 0755 and another owner end up 0700 and the daemon user\'s', async () => {
    const root = join(work, 'daemon', 'root');
    for (const dir of ['snapshots', 'staging']) {
      mkdirSync(join(root, dir), { recursive: true });
      chmodSync(join(root, dir), 0o755);
      chownSync(join(root, dir), NOBODY, NOBODY);
    }
    daemon = await startDaemon(join(work, 'daemon'));
    for (const dir of ['snapshots', 'staging']) {
      const st = statSync(join(root, dir));
      assert.equal(st.mode & 0o777, 0o700, `${dir} mode ${(st.mode & 0o777).toString(8)}`);
      assert.equal(st.uid, process.getuid!(), `${dir} owner`);
      assert.equal(st.gid, process.getgid!(), `${dir} group`);
    }
  });
});
