// The start-up warm-up's made-up layer comes prebuilt by `npm run build`
// (scripts/build-warm-up-layer.mjs): a daemon start must find it, and it
// must be the very layer the warm-up would otherwise write. A file that is
// damaged must be refused and the layer written afresh.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openEstargz } from '../../../src/estargz/index.js';
import { PREBUILT_WARM_UP_LAYER, buildWarmUpLayer, encodeWarmUpLayer, readPrebuiltWarmUpLayer, warmUpLayer } from '../../../src/snapshotter/remote/warm-up-layer.js';
import { makeTempDir, removeTree } from '../../harness/process.js';

let work: string;
before(() => {
  work = makeTempDir('warm-up-layer');
});
after(() => removeTree(work));

describe('the warm-up layer', () => {
  it('comes prebuilt with the build, identical to a freshly written one, and is used as it is', async () => {
    const prebuilt = await readPrebuiltWarmUpLayer();
    assert.ok(prebuilt, `npm run build leaves ${PREBUILT_WARM_UP_LAYER}`);
    const fresh = await buildWarmUpLayer(work);
    assert.equal(prebuilt.compressedDigest, fresh.compressedDigest);
    assert.equal(prebuilt.tocDigest, fresh.tocDigest);
    assert.ok(prebuilt.blob.equals(fresh.blob));
    const index = await openEstargz(prebuilt.blob, { expectedTocDigest: prebuilt.tocDigest });
    assert.ok(index.lookup('usr/lib/big.bin'), 'it is an eStargz layer with the files the warm-up reads');
    assert.equal((await warmUpLayer(work)).prebuilt, true);
  });

  it('refuses a damaged or foreign file, so the warm-up writes the layer itself', async () => {
    const good = (await readPrebuiltWarmUpLayer())!;
    const flipped = Buffer.from(good.blob);
    flipped[100] ^= 0xff;
    const damaged = join(work, 'damaged.json');
    writeFileSync(damaged, encodeWarmUpLayer({ ...good, blob: flipped }));
    assert.equal(await readPrebuiltWarmUpLayer(damaged), undefined);
    const truncated = join(work, 'truncated.json');
    writeFileSync(truncated, encodeWarmUpLayer(good).slice(0, 50));
    assert.equal(await readPrebuiltWarmUpLayer(truncated), undefined);
    assert.equal(await readPrebuiltWarmUpLayer(join(work, 'missing.json')), undefined);
  });
});
