// A read whose fetch fails must come back as EIO at once; a read whose fetch
// is slow (longer than fuse-native's default 15 s op timeout) must still
// complete with the right bytes, and must not hold up other requests.
import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { mountLayer, type MountedLayer } from '../../../src/fuse/index.js';
import { randomBytesSeeded, recordingLogger, removeTempDir, tempDir, type RecordingLogger } from './helpers.js';
import { buildLayer, type MemoryLayer } from './memory-layer.js';

const SLOW_MS = 20_000;

describe('slow and failing layer reads', () => {
  let dir: string;
  let mnt: string;
  let layer: MemoryLayer;
  let logger: RecordingLogger;
  let mounted: MountedLayer | undefined;

  before(async () => {
    dir = await tempDir('reads');
    mnt = join(dir, 'mnt');
    await fs.mkdir(mnt);
    layer = buildLayer(
      [
        { path: '/broken', type: 'reg', data: randomBytesSeeded(10_000, 7) },
        { path: '/slow', type: 'reg', data: randomBytesSeeded(70_000, 8) },
        { path: '/fast', type: 'reg', data: 'fast\n' },
      ],
      {
        beforeRead: async (path) => {
          if (path === '/broken') throw new Error('registry answered 503 (simulated)');
          if (path === '/slow') await sleep(SLOW_MS);
        },
      },
    );
    logger = recordingLogger();
    mounted = await mountLayer(layer, mnt, { logger });
  });

  after(async () => {
    try {
      await mounted?.unmount();
    } finally {
      await removeTempDir(dir, [mnt]);
    }
  });

  it('turns a rejected layer read into EIO quickly, logged once with the path', async () => {
    for (let attempt = 0; attempt < 2; attempt++) {
      const started = Date.now();
      await assert.rejects(fs.readFile(join(mnt, 'broken')), (err: NodeJS.ErrnoException) => {
        assert.equal(err.code, 'EIO');
        return true;
      });
      assert.ok(Date.now() - started < 3000, `EIO took ${Date.now() - started} ms`);
    }
    // Each attempt reached the layer again: a failure is not cached.
    assert.ok(layer.reads.filter((r) => r.path === '/broken').length >= 2);
    const errors = logger.records.filter((r) => r.level === 'error');
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0]?.obj.path, '/broken');
    assert.match(String((errors[0]?.obj.err as Error).message), /503/);
    // Stat still works on the broken file; only its bytes are unavailable.
    assert.equal((await fs.stat(join(mnt, 'broken'))).size, 10_000);
  });

  it(`completes a ${SLOW_MS / 1000} s read with the right bytes while serving others`, async () => {
    const started = Date.now();
    const slow = fs.readFile(join(mnt, 'slow'));
    await sleep(1000);
    // The slow request occupies one FUSE thread and nothing else.
    const t0 = Date.now();
    assert.equal(await fs.readFile(join(mnt, 'fast'), 'utf8'), 'fast\n');
    assert.equal((await fs.readdir(mnt)).length, 3);
    assert.ok(Date.now() - t0 < 2000, `other requests waited ${Date.now() - t0} ms`);
    const got = await slow; // rejects with ETIMEDOUT if fuse-native's timeout were on
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= SLOW_MS - 500, `slow read finished after only ${elapsed} ms`);
    assert.ok(got.equals(layer.dataOf('/slow')), 'slow read returned the right bytes');
  });
});
