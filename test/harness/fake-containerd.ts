// An HTTP/2 server on a unix socket that plays containerd for the calls
// `lazysnap pull` sends by hand (reachability, plugin lookup): it hands each
// request, with its headers and whole body, to the test's answer.
import { createServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { join } from 'node:path';

let next = 0;

export type FakeAnswer = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, body: Buffer) => void;

export async function fakeContainerd(dir: string, answer: FakeAnswer): Promise<{ socket: string; server: Http2Server }> {
  const socket = join(dir, `containerd-${next++}.sock`);
  const server = createServer();
  server.on('stream', (stream, headers) => {
    const parts: Buffer[] = [];
    stream.on('data', (d: Buffer) => parts.push(d));
    stream.on('end', () => answer(stream, headers, Buffer.concat(parts)));
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { socket, server };
}

export function closeFake(server: Http2Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
