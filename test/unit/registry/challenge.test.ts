import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseWwwAuthenticate } from '../../../src/registry/index.js';

describe('parseWwwAuthenticate', () => {
  it('parses a Docker Hub bearer challenge', () => {
    const c = parseWwwAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
    );
    assert.deepEqual(c, [
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' },
      },
    ]);
  });

  it('handles spaces, mixed case, unquoted tokens and escapes', () => {
    const c = parseWwwAuthenticate('  BEARER   Realm = "http://x/t?a=1" , Service=reg ,error="insufficient_scope", x="a\\"b\\\\c"');
    assert.equal(c.length, 1);
    assert.equal(c[0]!.scheme, 'bearer');
    assert.deepEqual(c[0]!.params, { realm: 'http://x/t?a=1', service: 'reg', error: 'insufficient_scope', x: 'a"b\\c' });
  });

  it('keeps commas inside quoted values (multi-scope)', () => {
    const c = parseWwwAuthenticate('Bearer realm="r",scope="repository:a:pull,push repository:b:pull"');
    assert.equal(c[0]!.params.scope, 'repository:a:pull,push repository:b:pull');
  });

  it('splits several challenges in one header', () => {
    const c = parseWwwAuthenticate('Basic realm="Registry Realm", Bearer realm="https://t/x",service="s"');
    assert.deepEqual(
      c.map((x) => [x.scheme, x.params]),
      [
        ['basic', { realm: 'Registry Realm' }],
        ['bearer', { realm: 'https://t/x', service: 's' }],
      ],
    );
  });

  it('parses a scheme without parameters followed by another challenge', () => {
    const c = parseWwwAuthenticate('Negotiate, Basic realm="x"');
    assert.deepEqual(c.map((x) => x.scheme), ['negotiate', 'basic']);
  });

  it('parses token68', () => {
    const c = parseWwwAuthenticate('Negotiate YIIGhgYJKoZIhvcSAQICAQBuggZ1MIIGcaADAgEFoQMCAQ6iBwMFACAAAAA==, Basic realm="r"');
    assert.equal(c[0]!.token68, 'YIIGhgYJKoZIhvcSAQICAQBuggZ1MIIGcaADAgEFoQMCAQ6iBwMFACAAAAA==');
    assert.equal(c[1]!.scheme, 'basic');
  });

  it('accepts an array of header values', () => {
    const c = parseWwwAuthenticate(['Basic realm="a"', 'Bearer realm="b"']);
    assert.deepEqual(c.map((x) => x.scheme), ['basic', 'bearer']);
  });

  it('returns nothing for absent or empty headers and survives garbage', () => {
    assert.deepEqual(parseWwwAuthenticate(undefined), []);
    assert.deepEqual(parseWwwAuthenticate(''), []);
    assert.doesNotThrow(() => parseWwwAuthenticate('"" ,,, = =" Bearer realm="unterminated'));
    const c = parseWwwAuthenticate('Bearer realm="unterminated');
    assert.equal(c[0]!.params.realm, 'unterminated');
  });
});
