/**
 * A made-up image served the way a registry serves it, on 127.0.0.1, for
 * the start-up warm-ups (the FUSE manager's remote path, the daemon's pull
 * path): each runs real client code against it once, so that V8 has
 * compiled that code before the first real image arrives. Not a registry:
 * one manifest, one blob, no auth, no uploads.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { digestOf } from './digest.js';
import { MediaType } from './media-types.js';

/** Serves the manifest at `/v2/.../manifests/latest` and the blob at `/v2/.../blobs/<digest>`, with the range forms the registry client sends. */
export function serveImageOnLoopback(manifest: Buffer, blob: Buffer, digest: string): Promise<Server> {
  const manifestDigest = digestOf(manifest);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url?.endsWith('/manifests/latest')) {
      res.writeHead(200, { 'content-type': MediaType.OciManifest, 'content-length': String(manifest.length), 'docker-content-digest': manifestDigest });
      res.end(req.method === 'HEAD' ? undefined : manifest);
      return;
    }
    if (!req.url?.endsWith(`/blobs/${digest}`)) {
      res.writeHead(404).end();
      return;
    }
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = blob.length - 1;
    if (range) {
      if (range[1] === '') start = Math.max(0, blob.length - Number(range[2]));
      else {
        start = Number(range[1]);
        if (range[2] !== '') end = Math.min(end, Number(range[2]));
      }
    }
    const headers = { 'content-type': 'application/octet-stream', 'content-length': String(end - start + 1), 'docker-content-digest': digest };
    if (range) res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${blob.length}` });
    else res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : blob.subarray(start, end + 1));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}
