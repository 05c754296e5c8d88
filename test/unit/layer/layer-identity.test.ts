// A remote layer is shared (open layer, mount, mountpoint, restore) only with
// layers that verified the same things: blob digest and TOC digest, or, for
// unverified layers, blob digest and the image they were pulled through.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidRemoteLayerError, layerIdentity } from '../../../src/snapshotter/remote/layer-identity.js';

const blob = `sha256:${'a'.repeat(64)}`;
const tocVictim = `sha256:${'b'.repeat(64)}`;
const tocAttacker = `sha256:${'c'.repeat(64)}`;

describe('remote layer identity', () => {
  it('differs when the TOC digest differs, whatever the blob digest says', () => {
    const victim = layerIdentity({ ref: 'honest.test/app:1', digest: blob, tocDigest: tocVictim });
    const attacker = layerIdentity({ ref: 'evil.test/app:1', digest: blob, tocDigest: tocAttacker });
    assert.notEqual(victim.key, attacker.key);
    assert.notEqual(victim.dirName, attacker.dirName);
    assert.equal(victim.dirName, `${'a'.repeat(64)}-toc-${'b'.repeat(64)}`);
  });

  it('is shared by two images whose layer verified the same blob and TOC digests', () => {
    const one = layerIdentity({ ref: 'honest.test/app:1', digest: blob, tocDigest: tocVictim, size: 10 });
    const two = layerIdentity({ ref: 'mirror.test/app:2', digest: blob, tocDigest: tocVictim });
    assert.deepEqual(one, two);
  });

  it('keeps unverified layers apart from verified ones and from other images', () => {
    const verified = layerIdentity({ ref: 'honest.test/app:1', digest: blob, tocDigest: tocVictim });
    const unverified = layerIdentity({ ref: 'honest.test/app:1', digest: blob, tocDigest: '' });
    const other = layerIdentity({ ref: 'evil.test/app:1', digest: blob, tocDigest: '' });
    assert.equal(unverified.verified, false);
    assert.notEqual(unverified.key, verified.key);
    assert.notEqual(unverified.dirName, verified.dirName);
    assert.notEqual(unverified.key, other.key);
    assert.notEqual(unverified.dirName, other.dirName);
  });

  it('refuses digests that are not digests (they would become paths)', () => {
    assert.throws(() => layerIdentity({ ref: 'r', digest: 'sha256:../../etc', tocDigest: tocVictim }), InvalidRemoteLayerError);
    assert.throws(() => layerIdentity({ ref: 'r', digest: blob, tocDigest: 'sha256:/x' }), InvalidRemoteLayerError);
  });
});
