import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatPlatform,
  normalizePlatform,
  parsePlatform,
  platformMatches,
  platformRank,
  selectPlatformManifest,
  type Descriptor,
  type Platform,
} from '../../../src/registry/index.js';

const p = (s: string): Platform => parsePlatform(s);
const desc = (n: number, platform?: Platform): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
  size: n,
  ...(platform ? { platform } : {}),
});

describe('platform parsing and normalisation', () => {
  it('parses os/arch[/variant] and normalises aliases as containerd does', () => {
    assert.deepEqual(p('linux/amd64'), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(p('linux/x86_64'), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(p('linux/aarch64'), { os: 'linux', architecture: 'arm64' });
    assert.deepEqual(p('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' });
    assert.deepEqual(p('linux/arm'), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(p('linux/armhf'), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(p('linux/armel'), { os: 'linux', architecture: 'arm', variant: 'v6' });
    assert.deepEqual(p('linux/arm/6'), { os: 'linux', architecture: 'arm', variant: 'v6' });
    assert.deepEqual(p('Linux/i386'), { os: 'linux', architecture: '386' });
    assert.equal(formatPlatform(p('linux/arm/v7')), 'linux/arm/v7');
    for (const bad of ['', 'linux', 'linux/', '/amd64', 'a/b/c/d', 'linux/am d64']) {
      assert.throws(() => parsePlatform(bad), /invalid platform/, bad);
    }
  });

  it('normalizePlatform keeps os.version', () => {
    assert.deepEqual(normalizePlatform({ os: 'windows', architecture: 'AMD64', 'os.version': '10.0.17763.1' }), {
      os: 'windows',
      architecture: 'amd64',
      'os.version': '10.0.17763.1',
    });
  });
});

describe('platform matching', () => {
  const cases: Array<[string, Platform, boolean]> = [
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }, true],
    ['linux/amd64', { os: 'linux', architecture: 'amd64', variant: 'v1' }, true],
    ['linux/amd64', { os: 'linux', architecture: 'arm64' }, false],
    ['linux/amd64', { os: 'windows', architecture: 'amd64' }, false],
    ['linux/amd64', { os: 'linux', architecture: 'amd64', variant: 'v3' }, false],
    ['linux/amd64/v3', { os: 'linux', architecture: 'amd64' }, true],
    ['linux/arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }, true],
    ['linux/arm64', { os: 'linux', architecture: 'aarch64' }, true],
    ['linux/arm64', { os: 'linux', architecture: 'arm', variant: 'v7' }, false],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm', variant: 'v6' }, true],
    ['linux/arm/v6', { os: 'linux', architecture: 'arm', variant: 'v7' }, false],
    ['linux/arm/v7', { os: 'linux', architecture: 'arm' }, true],
    ['linux/riscv64', { os: 'linux', architecture: 'riscv64' }, true],
    ['linux/s390x', { os: 'linux', architecture: 'ppc64le' }, false],
  ];
  for (const [want, have, ok] of cases) {
    it(`${want} ${ok ? 'runs' : 'does not run'} ${formatPlatform(have)}`, () => {
      assert.equal(platformMatches(p(want), have), ok);
    });
  }

  it('ranks exact variants before compatible ones', () => {
    const want = p('linux/arm/v7');
    assert.ok(platformRank(want, { os: 'linux', architecture: 'arm', variant: 'v7' }) < platformRank(want, { os: 'linux', architecture: 'arm', variant: 'v6' }));
  });
});

describe('selectPlatformManifest', () => {
  const index = [
    desc(1, { os: 'linux', architecture: 'arm', variant: 'v6' }),
    desc(2, { os: 'linux', architecture: 'amd64' }),
    desc(3, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    desc(4, { os: 'linux', architecture: 'arm', variant: 'v7' }),
    desc(5, { os: 'unknown', architecture: 'unknown' }),
    desc(6),
    desc(7, { os: 'linux', architecture: 'amd64' }),
  ];

  it('picks the exact match, the first one on ties', () => {
    assert.equal(selectPlatformManifest(index, p('linux/amd64'))?.size, 2);
    assert.equal(selectPlatformManifest(index, p('linux/arm64'))?.size, 3);
  });

  it('prefers an exact variant over an earlier compatible one', () => {
    assert.equal(selectPlatformManifest(index, p('linux/arm/v7'))?.size, 4);
    assert.equal(selectPlatformManifest(index, p('linux/arm/v6'))?.size, 1);
    assert.equal(selectPlatformManifest(index, p('linux/arm/v8'))?.size, 4);
  });

  it('returns undefined when nothing fits and skips platform-less entries', () => {
    assert.equal(selectPlatformManifest(index, p('linux/s390x')), undefined);
    assert.equal(selectPlatformManifest([desc(6)], p('linux/amd64')), undefined);
  });
});
