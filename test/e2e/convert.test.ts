// `lazysnap convert` turns an ordinary image into eStargz in a real
// registry; the result is still a valid image for plain containerd
// (eStargz is gzip tar) and every layer's TOC verifies against its annotation.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startContainerd, type ContainerdInstance } from '../harness/containerd.js';
import { startRegistry, type RegistryInstance } from '../harness/registry.js';
import { buildImage, buildTestImageTree, pushImage } from '../harness/image.js';
import { lazysnapCli } from '../harness/lazysnap-cli.js';
import { makeTempDir, removeTree } from '../harness/process.js';
import pino from 'pino';
import { RegistryClient } from '../../src/registry/index.js';
import { convertImage } from '../../src/convert/index.js';
import { readTocIndex } from '../../src/estargz/index.js';
import { STARGZ_TOC_DIGEST, ESTARGZ_UNCOMPRESSED_SIZE } from '../../src/containerd/labels.js';

let work: string;
let registry: RegistryInstance;
let containerd: ContainerdInstance;
let source: string;
let converted: string;
const client = new RegistryClient();

before(async () => {
  work = makeTempDir('e2e-convert');
  registry = await startRegistry(work);
  const image = buildImage(join(work, 'oci'), 'v1', buildTestImageTree(join(work, 'tree')));
  source = pushImage(image, registry.host, 'lazysnap/plain:v1');
  converted = `${registry.host}/lazysnap/esgz:v1`;
  containerd = await startContainerd(work);
});

after(async () => {
  await client.close();
  await containerd?.stop();
  await registry?.stop();
  removeTree(work);
});

describe('lazysnap convert', () => {
  it('converts every layer, annotates it, and reports progress per layer', async () => {
    const { stdout, stderr } = await lazysnapCli(['convert', '--chunk-size', '1048576', source, converted]);
    assert.match(stdout, /3 layers/);
    for (const n of [1, 2, 3]) assert.match(stderr, new RegExp(`layer ${n}/3 [0-9a-f]{12}: converting`));
    const resolved = await client.resolve(converted);
    assert.equal(resolved.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    const config = await client.getConfig(converted, resolved.manifest);
    const original = await client.getConfig(source, (await client.resolve(source)).manifest);
    assert.deepEqual(config.config.config, original.config.config, 'image config (cmd, env) must be kept');
    assert.notDeepEqual(config.config.rootfs?.diff_ids, original.config.rootfs?.diff_ids, 'diff_ids must be rewritten');
    for (const layer of resolved.manifest.layers) {
      assert.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
      const toc = layer.annotations?.[STARGZ_TOC_DIGEST];
      assert.ok(toc, 'missing TOC digest annotation');
      assert.ok(Number(layer.annotations?.[ESTARGZ_UNCOMPRESSED_SIZE]) > 0);
      const index = await readTocIndex((offset, length) => client.readRange(converted, layer.digest, offset, length), layer.size, { expectedTocDigest: toc });
      assert.ok(index.entryCount > 0);
    }
  });

  it('the converted image pulls and runs with containerd\'s own overlayfs', async () => {
    await containerd.ctr(['images', 'pull', '--plain-http', converted]);
    const out = await containerd.ctr(['run', '--rm', converted, 'esgz-plain', '/bin/sh', '-c', 'cat /etc/lower/kept.txt /layer-1.txt /layer-2.txt; ls /opt/data; test -e /etc/lower/gone.txt || echo whiteout-ok; sha256sum /usr/lib/python3.11/os.py']);
    const lines = out.trim().split('\n');
    assert.deepEqual(lines.slice(0, 5), ['kept-from-layer-0', 'from-layer-1', 'from-layer-2', 'new.txt', 'whiteout-ok']);
    const { createHash } = await import('node:crypto');
    const { readFileSync } = await import('node:fs');
    const expected = createHash('sha256').update(readFileSync('/usr/lib/python3.11/os.py')).digest('hex');
    assert.equal(lines[5]?.split(/\s+/)[0], expected);
  });

  it('converting an eStargz image again keeps its layers as they are', async () => {
    const again = `${registry.host}/lazysnap/esgz:again`;
    const { stderr } = await lazysnapCli(['convert', converted, again]);
    assert.match(stderr, /already eStargz/);
    const a = await client.resolve(converted);
    const b = await client.resolve(again);
    assert.deepEqual(b.manifest.layers.map((l) => l.digest), a.manifest.layers.map((l) => l.digest));
  });

  it('a layer that fails to convert fails the conversion and leaves no download holding the client open', { timeout: 60_000 }, async () => {
    // Before, the unread layer stream kept the registry client's close()
    // pending forever and the CLI exited 0 with nothing pushed.
    const own = new RegistryClient();
    const destination = `${registry.host}/lazysnap/esgz:failed`;
    await assert.rejects(
      convertImage({ source, destination, compressionLevel: 12 }, own, { layer: () => undefined }, pino({ level: 'silent' })),
      /compressionLevel must be -1\.\.9, got 12/,
    );
    await own.close();
    await assert.rejects(client.resolve(destination));
  });
});
