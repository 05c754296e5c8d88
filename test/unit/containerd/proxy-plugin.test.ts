// How `lazysnap pull` finds the lazysnap daemon behind --snapshotter: it asks
// containerd's Introspection service, whose answer for a proxy plugin
// exports its socket. Against an HTTP/2 server that plays containerd; the
// same lookup against a real containerd runs in test/e2e/daemon-pull.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { closeFake, fakeContainerd, type FakeAnswer } from '../../harness/fake-containerd.js';
import { ContainerdAnswerError } from '../../../src/containerd/bare-call.js';
import { decodePluginsResponse, lookupSnapshotterPlugin, ProtobufDecodeError, usableProxyAddress } from '../../../src/containerd/proxy-plugin.js';

const dir = mkdtempSync(join(tmpdir(), 'lazysnap-plugin-'));

/** Protobuf by hand: a length-delimited field. */
function field(number: number, payload: Buffer | string): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  assert.ok(bytes.length < 128);
  return Buffer.concat([Buffer.from([(number << 3) | 2, bytes.length]), bytes]);
}

/** introspection.v1.Plugin with type, id, exports and (optionally) init_err. */
function plugin(type: string, id: string, exports: Record<string, string>, initErr = false): Buffer {
  const parts = [field(1, type), field(2, id), Buffer.from([0x18, 0x01]) /* a varint field we skip */];
  for (const [k, v] of Object.entries(exports)) parts.push(field(5, Buffer.concat([field(1, k), field(2, v)])));
  if (initErr) parts.push(field(7, Buffer.concat([Buffer.from([0x08, 0x02]), field(2, 'dial failed')])));
  return Buffer.concat(parts);
}

function answerWith(message: Buffer) {
  return (stream: ServerHttp2Stream): void => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    const frame = Buffer.alloc(5);
    frame.writeUInt32BE(message.length, 1);
    stream.end(Buffer.concat([frame, message]));
  };
}

const fake = (answer: FakeAnswer) => fakeContainerd(dir, answer);
const close = closeFake;

describe('snapshotter plugin lookup', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("asks Introspection/Plugins for the snapshotter by type and id, and returns its exported address", async () => {
    let seen: { headers: IncomingHttpHeaders; body: Buffer } | undefined;
    const response = Buffer.concat([
      field(1, plugin('io.containerd.snapshotter.v1', 'overlayfs', { root: '/var/lib/containerd/x' })),
      field(1, plugin('io.containerd.snapshotter.v1', 'lazysnap', { address: '/run/lazysnap/lazysnap.sock' })),
    ]);
    const { socket, server } = await fake((stream, headers, body) => {
      seen = { headers, body };
      answerWith(response)(stream);
    });
    try {
      assert.deepEqual(await lookupSnapshotterPlugin(socket, 'k8s.io', 'lazysnap'), { type: 'io.containerd.snapshotter.v1', id: 'lazysnap', address: '/run/lazysnap/lazysnap.sock', failed: false });
      assert.ok(seen);
      assert.equal(seen.headers[':path'], '/containerd.services.introspection.v1.Introspection/Plugins');
      assert.equal(seen.headers['containerd-namespace'], 'k8s.io');
      const filter = 'type=="io.containerd.snapshotter.v1",id=="lazysnap"';
      assert.deepEqual(seen.body.subarray(5), field(1, filter), 'PluginsRequest{filters: [filter]} behind a gRPC frame header');
      // A built-in snapshotter has no address; one containerd does not know is undefined.
      assert.equal((await lookupSnapshotterPlugin(socket, 'default', 'overlayfs'))?.address, undefined);
      assert.equal(await lookupSnapshotterPlugin(socket, 'default', 'stargz'), undefined);
    } finally {
      await close(server);
    }
  });

  it('says when containerd could not initialize the plugin', () => {
    const [decoded] = decodePluginsResponse(field(1, plugin('io.containerd.snapshotter.v1', 'lazysnap', { address: '/s' }, true)));
    assert.equal(decoded?.failed, true);
    // Such a plugin's socket is no place to hand a pull to, whoever asks (the CLI, or a daemon checking itself).
    assert.equal(usableProxyAddress(decoded), undefined);
    assert.equal(usableProxyAddress({ address: '/s', failed: false }), '/s');
    assert.equal(usableProxyAddress({ address: undefined, failed: false }), undefined, 'a built-in snapshotter');
    assert.equal(usableProxyAddress(undefined), undefined, 'no such snapshotter');
  });

  it('rejects a truncated answer instead of reading past it', () => {
    const whole = field(1, plugin('io.containerd.snapshotter.v1', 'lazysnap', { address: '/s' }));
    assert.throws(() => decodePluginsResponse(whole.subarray(0, whole.length - 3)), ProtobufDecodeError);
  });

  it("passes containerd's error on with its code", async () => {
    const { socket, server } = await fake((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '3', 'grpc-message': 'bad filter' }, { endStream: true });
    });
    try {
      await assert.rejects(lookupSnapshotterPlugin(socket, 'default', 'lazysnap'), (err: unknown) =>
        err instanceof ContainerdAnswerError && err.code === 3 && /plugin lookup of snapshotter lazysnap with gRPC status 3: bad filter/.test(err.message));
    } finally {
      await close(server);
    }
  });
});
