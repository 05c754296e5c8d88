import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { loadProtos, lookupService } from '../../../src/containerd/api.js';
import { CriKeychain, IMAGE_SERVICE, IMAGE_SERVICE_METHODS, ImageServiceProxy, imageServiceDefinition, type ImageServiceMethod } from '../../../src/cri/index.js';

const SECRET = 'pr0xy-secret';
const bytes = (b: Buffer) => b;

interface Seen {
  method: ImageServiceMethod;
  request: Buffer;
  metadata: grpc.Metadata;
}

/** A stand-in for containerd's CRI that records what it got, answers per method, or fails as told. */
class UpstreamImageService {
  readonly seen: Seen[] = [];
  failWith: grpc.ServiceError | undefined;
  private readonly server = new grpc.Server();

  constructor() {
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const method of IMAGE_SERVICE_METHODS) {
      handlers[method] = (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        this.seen.push({ method, request: call.request, metadata: call.metadata });
        if (this.failWith) callback(this.failWith);
        else callback(null, answerFor(method, call.request));
      };
    }
    this.server.addService(imageServiceDefinition(), handlers);
  }

  listen(socket: string): Promise<void> {
    return new Promise((resolve, reject) => this.server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

/** Bytes no proto subset could re-encode: a field number the project's CRI proto does not declare. */
function answerFor(method: string, request: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0xfa, 0x01, method.length]), Buffer.from(method), request]);
}

function call(client: grpc.Client, method: string, request: Buffer, metadata = new grpc.Metadata()): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(`/${IMAGE_SERVICE}/${method}`, bytes, bytes, request, metadata, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res as Buffer)));
  });
}

const pullRequestSerialize = lookupService(loadProtos(['cri/runtime/v1/api.proto']), IMAGE_SERVICE).service.PullImage!.requestSerialize;

let dir: string;
let upstream: UpstreamImageService;
let proxyServer: grpc.Server;
let proxy: ImageServiceProxy;
let client: grpc.Client;
const keychain = new CriKeychain();
const logLines: string[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lazysnap-cri-proxy-'));
  upstream = new UpstreamImageService();
  await upstream.listen(join(dir, 'containerd.sock'));
  const logger = pino({ level: 'trace' }, new Writable({ write: (chunk, _enc, done) => { logLines.push(String(chunk)); done(); } }));
  proxy = new ImageServiceProxy({ upstreamSocket: join(dir, 'containerd.sock'), keychain, logger });
  proxyServer = new grpc.Server();
  proxyServer.addService(imageServiceDefinition(), proxy.implementation());
  await new Promise<void>((resolve, reject) => proxyServer.bindAsync(`unix://${join(dir, 'lazysnap.sock')}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  client = new grpc.Client(`unix://${join(dir, 'lazysnap.sock')}`, grpc.credentials.createInsecure());
});

after(() => {
  client.close();
  proxy.close();
  proxyServer.forceShutdown();
  upstream.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('CRI ImageService proxy', () => {
  for (const method of IMAGE_SERVICE_METHODS) {
    it(`${method} reaches containerd byte for byte, with kubelet's metadata, and containerd's answer comes back byte for byte`, async () => {
      upstream.failWith = undefined;
      // A field (number 99) the project's proto subset does not know must survive both ways.
      const request = Buffer.from([0x9a, 0x06, 0x03, 0x61, 0x62, 0x63]);
      const metadata = new grpc.Metadata();
      metadata.set('x-kubelet-trace', `trace-${method}`);
      const answer = await call(client, method, request, metadata);
      assert.deepEqual(answer, answerFor(method, request));
      const seen = upstream.seen.at(-1)!;
      assert.equal(seen.method, method);
      assert.deepEqual(seen.request, request);
      assert.deepEqual(seen.metadata.get('x-kubelet-trace'), [`trace-${method}`]);
    });
  }

  it('containerd\'s errors reach kubelet with their code and message unchanged', async () => {
    upstream.failWith = Object.assign(new Error('x'), { code: grpc.status.NOT_FOUND, details: 'image "nope" not found', metadata: new grpc.Metadata() });
    for (const method of IMAGE_SERVICE_METHODS) {
      await assert.rejects(call(client, method, Buffer.alloc(0)), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.NOT_FOUND, method);
        assert.equal(err.details, 'image "nope" not found');
        return true;
      });
    }
    upstream.failWith = undefined;
  });

  it('PullImage keeps the credentials for the image, forwards them unchanged, and logs no secret', async () => {
    const extra = Buffer.from([0x1a, 0x02, 0x0a, 0x00]); // sandbox_config (field 3), absent from the proto subset
    const request = Buffer.concat([
      pullRequestSerialize({ image: { image: 'reg.example.com/team/app:v1' }, auth: { username: 'u', password: SECRET, serverAddress: 'https://reg.example.com' } }),
      extra,
    ]);
    await call(client, 'PullImage', request);
    assert.deepEqual(upstream.seen.at(-1)!.request, request);
    assert.deepEqual(await keychain.lookup('reg.example.com', undefined, { repository: 'team/app' }), { username: 'u', password: SECRET });
    const log = logLines.join('');
    assert.match(log, /credentials kept in memory/);
    assert.ok(!log.includes(SECRET));
  });

  it('RemoveImage forgets the image\'s credentials', async () => {
    keychain.remember('reg.example.com/team/gone:v1', { username: 'u', password: SECRET });
    const request = lookupService(loadProtos(['cri/runtime/v1/api.proto']), IMAGE_SERVICE).service.RemoveImage!.requestSerialize({ image: { image: 'reg.example.com/team/gone:v1' } });
    await call(client, 'RemoveImage', request);
    assert.equal(await keychain.lookup('reg.example.com', undefined, { repository: 'team/gone' }), undefined);
  });

  it('a containerd that is not there is UNAVAILABLE to kubelet, as containerd\'s own socket would be', async () => {
    const orphan = new ImageServiceProxy({ upstreamSocket: join(dir, 'absent.sock'), keychain, logger: pino({ level: 'silent' }) });
    const server = new grpc.Server();
    server.addService(imageServiceDefinition(), orphan.implementation());
    const socket = join(dir, 'orphan.sock');
    await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    const orphanClient = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure());
    try {
      await assert.rejects(call(orphanClient, 'ListImages', Buffer.alloc(0)), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
    } finally {
      orphanClient.close();
      orphan.close();
      server.forceShutdown();
    }
  });
});
