// A tiny node:http server for unit tests of the registry client: records
// every request (method, URL, headers, body) and every TCP connection, so
// tests can check what the client sent, not only what it returned.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { MediaType } from '../../../src/registry/index.js';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export type FakeHandler = (req: IncomingMessage & { body: Buffer }, res: ServerResponse, server: FakeServer) => unknown;

export class FakeServer {
  readonly requests: RecordedRequest[] = [];
  connections = 0;
  handler: FakeHandler;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private port = 0;

  private constructor(handler: FakeHandler) {
    this.handler = handler;
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        this.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        Promise.resolve(this.handler(Object.assign(req, { body }), res, this)).catch((err: unknown) => {
          res.statusCode = 500;
          res.end(String(err));
        });
      });
    });
    this.server.on('connection', (socket: Socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  static async start(handler: FakeHandler): Promise<FakeServer> {
    const s = new FakeServer(handler);
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    const addr = s.server.address();
    s.port = typeof addr === 'object' && addr ? addr.port : 0;
    return s;
  }

  /** host:port, as used in references. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  /** Requests whose path (without query) equals or starts with `prefix`. */
  requestsTo(prefix: string): RecordedRequest[] {
    return this.requests.filter((r) => r.url.split('?')[0]!.startsWith(prefix));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(data.length), ...headers });
  res.end(data);
}

export function sendError(res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { errors: [{ code, message }] }, headers);
}

/** A Docker schema 2 manifest (as served bytes) whose one layer is `blob`, with a made-up config digest. */
export function oneLayerManifest(blob: Buffer, blobDigest: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, digest: `sha256:${'c'.repeat(64)}`, size: 3 },
      layers: [{ mediaType: MediaType.DockerLayerGzip, digest: blobDigest, size: blob.length }],
    }),
  );
}
