import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { MetadataStore } from '../../../src/snapshotter/metadata-store.js';
import { Kind } from '../../../src/snapshotter/types.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'lazysnap-store-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('metadata store records', () => {
  it('reads records written before nanosecond times and long keys (times in ms, no key field)', async () => {
    const path = join(dir, 'metadata.lmdb');
    const env = open({ path, compression: false, maxDbs: 8 });
    const snapshots = env.openDB({ name: 'snapshots' });
    env.transactionSync(() => {
      env.put('schema-version', 1);
      snapshots.put('old-base', { id: 1, kind: Kind.Committed, parent: '', labels: [['a', 'b']], created: 1_700_000_000_123, updated: 1_700_000_000_456, size: 10, inodes: 2 });
    });
    await env.close();

    const store = MetadataStore.open(path);
    try {
      const old = store.get('old-base');
      assert.ok(old);
      assert.equal(old.info.created, 1_700_000_000_123_000_000n);
      assert.equal(old.info.updated, 1_700_000_000_456_000_000n);
      assert.deepEqual(old.info.labels, { a: 'b' });
      assert.deepEqual(store.infos().map((info) => info.name), ['old-base']);

      const child = store.create(Kind.Active, 'x'.repeat(5000), 'old-base', {}, 2);
      assert.ok(child.info.created > old.info.updated, 'a new record gets a nanosecond time of now');
      assert.deepEqual(store.parentIds('x'.repeat(5000)), [1]);
      const updated = store.update('old-base', { c: 'd' }, []);
      assert.ok(updated.updated >= updated.created);
      assert.equal(updated.created, old.info.created);
    } finally {
      await store.close();
    }
  });

  it('keeps keys that look like hashed long keys apart from the long keys', async () => {
    const store = MetadataStore.open(join(dir, 'metadata.lmdb'));
    try {
      const long = 'k'.repeat(2000);
      store.create(Kind.Active, long, '', { which: 'long' }, 1);
      const lookalike = `\u0001sha256:${'0'.repeat(64)}`;
      store.create(Kind.Active, lookalike, '', { which: 'lookalike' }, 2);
      assert.equal(store.get(long)?.info.labels.which, 'long');
      assert.equal(store.get(lookalike)?.info.labels.which, 'lookalike');
      assert.equal(store.get('k'.repeat(1999)), undefined);
      assert.deepEqual(store.infos().map((info) => info.name).sort(), [long, lookalike].sort());
    } finally {
      await store.close();
    }
  });
});
