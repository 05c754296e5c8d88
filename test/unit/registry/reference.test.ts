import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InvalidReferenceError, parseReference, Reference } from '../../../src/registry/index.js';

const D = `sha256:${'a'.repeat(64)}`;
const D512 = `sha512:${'b'.repeat(128)}`;

interface Valid {
  input: string;
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
  full: string;
  apiHost?: string;
}

const valid: Valid[] = [
  { input: 'busybox', registry: 'docker.io', repository: 'library/busybox', tag: 'latest', full: 'docker.io/library/busybox:latest', apiHost: 'registry-1.docker.io' },
  { input: 'busybox:1.36', registry: 'docker.io', repository: 'library/busybox', tag: '1.36', full: 'docker.io/library/busybox:1.36' },
  { input: 'library/busybox', registry: 'docker.io', repository: 'library/busybox', tag: 'latest', full: 'docker.io/library/busybox:latest' },
  { input: 'docker.io/busybox', registry: 'docker.io', repository: 'library/busybox', tag: 'latest', full: 'docker.io/library/busybox:latest' },
  { input: 'index.docker.io/library/busybox', registry: 'docker.io', repository: 'library/busybox', tag: 'latest', full: 'docker.io/library/busybox:latest' },
  { input: 'user/app', registry: 'docker.io', repository: 'user/app', tag: 'latest', full: 'docker.io/user/app:latest' },
  { input: `busybox@${D}`, registry: 'docker.io', repository: 'library/busybox', digest: D, full: `docker.io/library/busybox@${D}` },
  { input: `busybox:1.36@${D}`, registry: 'docker.io', repository: 'library/busybox', tag: '1.36', digest: D, full: `docker.io/library/busybox:1.36@${D}` },
  { input: `ghcr.io/org/app@${D512}`, registry: 'ghcr.io', repository: 'org/app', digest: D512, full: `ghcr.io/org/app@${D512}`, apiHost: 'ghcr.io' },
  { input: 'localhost/foo', registry: 'localhost', repository: 'foo', tag: 'latest', full: 'localhost/foo:latest' },
  { input: 'localhost:5000/foo/bar:v1', registry: 'localhost:5000', repository: 'foo/bar', tag: 'v1', full: 'localhost:5000/foo/bar:v1', apiHost: 'localhost:5000' },
  { input: '127.0.0.1:5000/a/b/c', registry: '127.0.0.1:5000', repository: 'a/b/c', tag: 'latest', full: '127.0.0.1:5000/a/b/c:latest' },
  { input: '[::1]:5000/foo:tag', registry: '[::1]:5000', repository: 'foo', tag: 'tag', full: '[::1]:5000/foo:tag' },
  { input: '[2001:db8::1]/repo', registry: '[2001:db8::1]', repository: 'repo', tag: 'latest', full: '[2001:db8::1]/repo:latest' },
  { input: 'test:5000/repo', registry: 'test:5000', repository: 'repo', tag: 'latest', full: 'test:5000/repo:latest' },
  { input: 'test.com:tag', registry: 'docker.io', repository: 'library/test.com', tag: 'tag', full: 'docker.io/library/test.com:tag' },
  { input: 'test.com:5000', registry: 'docker.io', repository: 'library/test.com', tag: '5000', full: 'docker.io/library/test.com:5000' },
  { input: 'sub-dom1.foo.com/bar/baz/quux', registry: 'sub-dom1.foo.com', repository: 'bar/baz/quux', tag: 'latest', full: 'sub-dom1.foo.com/bar/baz/quux:latest' },
  { input: 'xn--n3h.com/myimage:xn--n3h.com', registry: 'xn--n3h.com', repository: 'myimage', tag: 'xn--n3h.com', full: 'xn--n3h.com/myimage:xn--n3h.com' },
  { input: 'Docker/docker', registry: 'Docker', repository: 'docker', tag: 'latest', full: 'Docker/docker:latest' },
  { input: 'lowercase:Uppercase', registry: 'docker.io', repository: 'library/lowercase', tag: 'Uppercase', full: 'docker.io/library/lowercase:Uppercase' },
  { input: 'foo-bar.com:8080/a--b__c.d_e', registry: 'foo-bar.com:8080', repository: 'a--b__c.d_e', tag: 'latest', full: 'foo-bar.com:8080/a--b__c.d_e:latest' },
  { input: 'a/b:_tag', registry: 'docker.io', repository: 'a/b', tag: '_tag', full: 'docker.io/a/b:_tag' },
  { input: `registry.example.com/x:${'t'.repeat(128)}`, registry: 'registry.example.com', repository: 'x', tag: 't'.repeat(128), full: `registry.example.com/x:${'t'.repeat(128)}` },
];

const invalid: Array<[string, RegExp]> = [
  ['', /empty/],
  [':justtag', /missing repository|invalid/],
  [`@${D}`, /missing repository|invalid/],
  ['repo@sha256:ffffffffffffffffffffffffffffffffff', /unsupported digest/],
  ['repo@sha256:' + 'g'.repeat(64), /digest/],
  [`validname@invaliddigest:${'f'.repeat(64)}`, /unsupported digest/],
  ['Uppercase:tag', /lowercase/],
  ['test:5000/Uppercase/lowercase:tag', /lowercase/],
  ['aa/asdf$$^/aa', /invalid/],
  ['-foo', /path component/],
  ['foo-', /path component/],
  ['foo___bar', /path component/],
  ['foo._bar', /path component/],
  ['foo//bar', /path component/],
  ['foo/', /path component|missing/],
  ['a:b:c', /invalid/],
  ['busybox:-tag', /tag/],
  [`busybox:${'t'.repeat(129)}`, /tag/],
  ['foo_bar.com:8080/a', /registry host/],
  ['[fe80::1%eth0]:5000/repo', /registry host/],
  ['-host.com/repo', /registry host/],
  ['busy box', /whitespace/],
  [' busybox', /whitespace/],
  ['a'.repeat(64).replace(/a/g, 'f'), /hexadecimal/],
  [`${'a/'.repeat(128)}a`, /255/],
];

describe('parseReference', () => {
  for (const v of valid) {
    it(`parses ${JSON.stringify(v.input.length > 60 ? v.input.slice(0, 60) + '…' : v.input)}`, () => {
      const r = parseReference(v.input);
      assert.equal(r.registry, v.registry);
      assert.equal(r.repository, v.repository);
      assert.equal(r.tag, v.tag);
      assert.equal(r.digest, v.digest);
      assert.equal(r.toString(), v.full);
      if (v.apiHost) assert.equal(r.apiHost, v.apiHost);
      // Normalised output is a fixed point.
      assert.equal(parseReference(r.toString()).toString(), v.full);
    });
  }

  for (const [input, why] of invalid) {
    it(`rejects ${JSON.stringify(input.length > 60 ? input.slice(0, 60) + '…' : input)}`, () => {
      assert.throws(
        () => parseReference(input),
        (err: unknown) => err instanceof InvalidReferenceError && why.test(err.message) && err.input === input,
      );
    });
  }

  it('object is the digest when pinned, else the tag', () => {
    assert.equal(parseReference(`a:t@${D}`).object, D);
    assert.equal(parseReference('a:t').object, 't');
  });

  it('defaultTag can be disabled', () => {
    const r = parseReference('busybox', { defaultTag: '' });
    assert.equal(r.tag, undefined);
    assert.equal(r.object, 'latest');
  });

  it('familiar() shortens Docker Hub names', () => {
    assert.equal(parseReference('busybox').familiar(), 'busybox:latest');
    assert.equal(parseReference('docker.io/user/app:1').familiar(), 'user/app:1');
    assert.equal(parseReference('docker.io/library/a/b').familiar(), 'library/a/b:latest');
    assert.equal(parseReference('ghcr.io/o/a:1').familiar(), 'ghcr.io/o/a:1');
  });

  it('withTag, withDigest and withRepository keep the registry', () => {
    const r = parseReference('127.0.0.1:5000/a:1');
    assert.equal(r.withDigest(D).toString(), `127.0.0.1:5000/a:1@${D}`);
    assert.equal(r.withTag('2').toString(), '127.0.0.1:5000/a:2');
    assert.equal(r.withRepository('b/c').toString(), '127.0.0.1:5000/b/c:latest');
    assert.throws(() => r.withDigest('sha256:abc'), InvalidReferenceError);
    assert.throws(() => r.withTag('.bad'), InvalidReferenceError);
  });

  it('round-trips generated references', () => {
    const component = fc.stringMatching(/^[a-z0-9]{1,6}(?:[._-][a-z0-9]{1,6}){0,2}$/);
    const host = fc.constantFrom('docker.io', 'ghcr.io', 'localhost:5000', '127.0.0.1:41234', 'reg.example.com');
    const tag = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}$/);
    fc.assert(
      fc.property(host, fc.array(component, { minLength: 2, maxLength: 4 }), fc.option(tag), fc.option(fc.stringMatching(/^[a-f0-9]{64}$/)), (h, path, t, hex) => {
        let s = `${h}/${path.join('/')}`;
        if (t !== null) s += `:${t}`;
        if (hex !== null) s += `@sha256:${hex}`;
        const r = parseReference(s);
        assert.ok(r instanceof Reference);
        assert.equal(r.registry, h);
        assert.equal(r.repository, path.join('/'));
        assert.equal(parseReference(r.toString()).toString(), r.toString());
      }),
      { numRuns: 300 },
    );
  });
});
