// The reachability check `lazysnap pull` makes first, against an HTTP/2
// server on a unix socket that plays containerd: what it sends on the wire,
// and how each kind of answer (or none) is reported. The same check against
// a real containerd runs in test/e2e/cli-failures.test.ts and every pull.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { closeFake, fakeContainerd, type FakeAnswer } from '../../harness/fake-containerd.js';
import { loadProtos, lookupService } from '../../../src/containerd/api.js';
import { PeerUnreachableError } from '../../../src/containerd/errors.js';
import { ReachabilityCheckError, checkContainerdAnswers, encodeLeasesListRequest } from '../../../src/containerd/reachability.js';

const dir = mkdtempSync(join(tmpdir(), 'lazysnap-reach-'));
const fake = (answer: FakeAnswer) => fakeContainerd(dir, answer);
const close = closeFake;

describe('containerd reachability check', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('sends a Leases List in gRPC framing with the namespace, and resolves on status 0', async () => {
    let seen: { headers: IncomingHttpHeaders; body: Buffer } | undefined;
    const { socket, server } = await fake((stream, headers, body) => {
      seen = { headers, body };
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.from([0, 0, 0, 0, 0])); // an empty ListResponse
    });
    try {
      await checkContainerdAnswers(socket, 'k8s.io', 2_000);
      assert.ok(seen);
      assert.equal(seen.headers[':path'], '/containerd.services.leases.v1.Leases/List');
      assert.equal(seen.headers['content-type'], 'application/grpc');
      assert.equal(seen.headers['containerd-namespace'], 'k8s.io');
      // 5-byte frame (uncompressed, length), then field 1 (filters) = the filter string.
      const length = seen.body.readUInt32BE(1);
      assert.equal(seen.body[0], 0);
      assert.equal(length, seen.body.length - 5);
      assert.equal(seen.body[5], 0x0a);
      assert.equal(seen.body.subarray(7, 7 + (seen.body[6] as number)).toString(), 'id==lazysnap-reachability-check');
    } finally {
      await close(server);
    }
  });

  it('reports a status other than 0 with its code and message', async () => {
    const { socket, server } = await fake((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '3', 'grpc-message': encodeURIComponent('namespace "bad name" invalid') }, { endStream: true });
    });
    try {
      await assert.rejects(checkContainerdAnswers(socket, 'bad name', 2_000), (err: unknown) =>
        err instanceof ReachabilityCheckError && err.code === 3 && err.details === 'namespace "bad name" invalid');
    } finally {
      await close(server);
    }
  });

  it('says containerd cannot be reached when nothing listens on the socket, or the socket is stale', async () => {
    const missing = join(dir, 'missing.sock');
    const stale = join(dir, 'stale.sock');
    writeFileSync(stale, '');
    for (const address of [missing, stale]) {
      const started = Date.now();
      await assert.rejects(checkContainerdAnswers(address, 'default', 5_000), (err: unknown) =>
        err instanceof PeerUnreachableError && err.code === 14 && err.message.includes(`cannot reach containerd at ${address}`) && /is containerd running\?/.test(err.message));
      assert.ok(Date.now() - started < 2_000, 'at once, not after the timeout');
    }
  });

  it('says containerd is hung when it accepts the call but never answers', async () => {
    const { socket, server } = await fake(() => {});
    try {
      await assert.rejects(checkContainerdAnswers(socket, 'default', 300), (err: unknown) =>
        err instanceof PeerUnreachableError && err.code === 4 && err.message.includes('no answer within 0.3 s'));
    } finally {
      await close(server);
    }
  });

  it('encodes the request as the generated Leases client does', () => {
    const Leases = lookupService(loadProtos(['containerd/services/leases/v1/leases.proto']), 'containerd.services.leases.v1.Leases');
    const list = Leases.service.List ?? Leases.service.list;
    assert.ok(list, 'List is in the loaded service');
    const message = list.requestSerialize({ filters: ['id==lazysnap-reachability-check'] });
    const framed = encodeLeasesListRequest('id==lazysnap-reachability-check');
    assert.equal(framed.readUInt32BE(1), message.length);
    assert.deepEqual(framed.subarray(5), message);
  });
});
