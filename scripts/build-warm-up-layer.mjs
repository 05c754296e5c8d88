// Part of `npm run build`: writes the start-up warm-up's made-up eStargz layer
// next to the compiled module that reads it (see src/snapshotter/remote/warm-up-layer.ts),
// so a daemon start reads it instead of running the estargz writer.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PREBUILT_WARM_UP_LAYER, buildWarmUpLayer, encodeWarmUpLayer } from '../dist/src/snapshotter/remote/warm-up-layer.js';

const spool = await mkdtemp(join(tmpdir(), 'lazysnap-warm-up-layer-'));
try {
  const layer = await buildWarmUpLayer(spool);
  await writeFile(PREBUILT_WARM_UP_LAYER, encodeWarmUpLayer(layer));
  console.log(`wrote ${PREBUILT_WARM_UP_LAYER} (${layer.blob.length} bytes, ${layer.compressedDigest})`);
} finally {
  await rm(spool, { recursive: true, force: true });
}
