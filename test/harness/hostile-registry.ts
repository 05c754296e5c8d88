// A hostile registry: a small HTTP server on 127.0.0.1 that serves whatever
// bytes it is given under whatever digests it is told, which a real registry
// (docker-registry checks every upload against its digest) never would. It
// speaks just enough of the distribution API for lazysnap's registry client:
// manifests by tag or digest, blobs with HEAD and single byte ranges.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HostileImage {
  /** Repository name, e.g. `evil/app`. */
  name: string;
  tag: string;
  manifest: Buffer;
  manifestDigest: string;
  mediaType: string;
}

export interface HostileRegistry {
  host: string;
  /** Requests seen, as `METHOD path range`. */
  requests: string[];
  stop(): Promise<void>;
}

export async function startHostileRegistry(images: HostileImage[], blobs: ReadonlyMap<string, Buffer>): Promise<HostileRegistry> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url} ${req.headers.range ?? ''}`);
    try {
      answer(req, res, images, blobs);
    } catch (err) {
      res.writeHead(500).end(String(err));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function answer(req: IncomingMessage, res: ServerResponse, images: HostileImage[], blobs: ReadonlyMap<string, Buffer>): void {
  const path = new URL(req.url ?? '/', 'http://registry').pathname;
  const head = req.method === 'HEAD';
  if (path === '/v2/' || path === '/v2') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(head ? undefined : '{}');
    return;
  }
  const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
  if (manifest) {
    const image = images.find((i) => i.name === manifest[1] && (i.tag === manifest[2] || i.manifestDigest === manifest[2]));
    if (!image) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
      return;
    }
    res.writeHead(200, { 'content-type': image.mediaType, 'content-length': image.manifest.length, 'docker-content-digest': image.manifestDigest });
    res.end(head ? undefined : image.manifest);
    return;
  }
  const blob = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(path);
  const data = blob ? blobs.get(blob[2]!) : undefined;
  if (!blob || !data) {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
    return;
  }
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (!range || head) {
    res.writeHead(200, { 'content-length': data.length, 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', 'docker-content-digest': blob[2] });
    res.end(head ? undefined : data);
    return;
  }
  const start = Number(range[1]);
  const end = range[2] ? Math.min(Number(range[2]), data.length - 1) : data.length - 1;
  if (start > end) {
    res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
    return;
  }
  res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${data.length}`, 'content-type': 'application/octet-stream' });
  res.end(data.subarray(start, end + 1));
}
