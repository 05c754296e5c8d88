import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  InvalidContentError,
  MediaType,
  UnsupportedMediaTypeError,
  parseContentRange,
  parseDigest,
  parseManifestDocument,
  digestOf,
  verifyDigest,
  DigestMismatchError,
  VerifyingStream,
  ShortReadError,
} from '../../../src/registry/index.js';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const manifest = {
  schemaVersion: 2,
  mediaType: MediaType.OciManifest,
  config: { mediaType: MediaType.OciConfig, digest: d('a'), size: 10 },
  layers: [{ mediaType: MediaType.OciLayerGzip, digest: d('b'), size: 20 }],
};
const index = {
  schemaVersion: 2,
  mediaType: MediaType.OciIndex,
  manifests: [{ mediaType: MediaType.OciManifest, digest: d('c'), size: 30, platform: { os: 'linux', architecture: 'amd64' } }],
};
const buf = (o: unknown): Buffer => Buffer.from(JSON.stringify(o));

describe('parseManifestDocument', () => {
  it('takes the media type from Content-Type, the mediaType field, or the shape', () => {
    assert.equal(parseManifestDocument(buf(manifest), `${MediaType.OciManifest}; charset=utf-8`).kind, 'manifest');
    assert.equal(parseManifestDocument(buf(index), 'application/json').kind, 'index');
    const { mediaType: _m, ...bare } = manifest;
    const doc = parseManifestDocument(buf(bare), 'application/octet-stream');
    assert.equal(doc.mediaType, MediaType.OciManifest);
    const { mediaType: _i, ...bareIndex } = index;
    assert.equal(parseManifestDocument(buf(bareIndex), undefined).mediaType, MediaType.OciIndex);
    const docker = { ...manifest, mediaType: MediaType.DockerManifest };
    assert.equal(parseManifestDocument(buf(docker), MediaType.DockerManifest).mediaType, MediaType.DockerManifest);
  });

  it('refuses a body that contradicts its Content-Type', () => {
    assert.throws(() => parseManifestDocument(buf(manifest), MediaType.OciIndex), InvalidContentError);
  });

  it('refuses schema 1, unknown types and broken documents', () => {
    assert.throws(() => parseManifestDocument(buf({ schemaVersion: 1, name: 'x' }), MediaType.DockerSchema1SignedManifest), UnsupportedMediaTypeError);
    assert.throws(() => parseManifestDocument(buf({ schemaVersion: 2, mediaType: 'application/x-other' }), undefined), UnsupportedMediaTypeError);
    assert.throws(() => parseManifestDocument(Buffer.from('{'), undefined), InvalidContentError);
    assert.throws(() => parseManifestDocument(buf([1]), undefined), InvalidContentError);
    assert.throws(() => parseManifestDocument(buf({ ...manifest, schemaVersion: 3 }), undefined), InvalidContentError);
    assert.throws(() => parseManifestDocument(buf({ ...manifest, layers: [{ mediaType: 'x', digest: 'sha256:12', size: 1 }] }), undefined), /invalid digest/);
    assert.throws(() => parseManifestDocument(buf({ ...manifest, config: { ...manifest.config, size: -1 } }), undefined), /invalid size/);
    assert.throws(() => parseManifestDocument(buf({ ...index, manifests: [{ digest: d('c'), size: 1 }] }), undefined), /no mediaType/);
  });
});

describe('digests', () => {
  it('parses sha256 and sha512 only', () => {
    assert.deepEqual(parseDigest(d('a')), { algorithm: 'sha256', hex: 'a'.repeat(64) });
    assert.equal(parseDigest(`sha512:${'0'.repeat(128)}`)?.algorithm, 'sha512');
    assert.equal(parseDigest(`md5:${'0'.repeat(32)}`), null);
    assert.equal(parseDigest(`sha256:${'A'.repeat(64)}`), null);
    assert.equal(parseDigest('sha256:abc'), null);
  });

  it('verifies bytes and reports both digests on mismatch', () => {
    const data = Buffer.from('hello');
    verifyDigest(data, digestOf(data), 'x');
    assert.throws(
      () => verifyDigest(data, d('0'), 'blob', { ref: 'r' }),
      (e: unknown) => e instanceof DigestMismatchError && e.expected === d('0') && e.actual === digestOf(data) && e.message.includes('ref r'),
    );
  });

  it('VerifyingStream fails at the end on wrong content or length', async () => {
    const data = Buffer.from('some blob bytes');
    const sink = async function* (src: AsyncIterable<Buffer>): AsyncGenerator<never> {
      for await (const _ of src) {
        // drain
      }
    };
    await pipeline(Readable.from([data]), new VerifyingStream(digestOf(data), data.length), sink);
    await assert.rejects(pipeline(Readable.from([data]), new VerifyingStream(d('1'), undefined), sink), DigestMismatchError);
    await assert.rejects(pipeline(Readable.from([data.subarray(0, 4)]), new VerifyingStream(digestOf(data), data.length), sink), ShortReadError);
    await assert.rejects(pipeline(Readable.from([data]), new VerifyingStream(digestOf(data), 3), sink), InvalidContentError);
  });
});

describe('parseContentRange', () => {
  it('parses satisfied and unsatisfied ranges', () => {
    assert.deepEqual(parseContentRange('bytes 0-9/100'), { start: 0, end: 9, total: 100 });
    assert.deepEqual(parseContentRange('bytes 5-5/*'), { start: 5, end: 5, total: undefined });
    assert.deepEqual(parseContentRange('bytes */42'), { start: 0, end: -1, total: 42 });
    assert.equal(parseContentRange('bytes 9-1/10'), null);
    assert.equal(parseContentRange('items 0-1/2'), null);
    assert.equal(parseContentRange(undefined), null);
  });
});
