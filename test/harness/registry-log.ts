// Reads docker-registry's combined access log: which blobs were fetched,
// with which status (206 = range request) and how many bytes.
export interface BlobRequest {
  method: string;
  digest: string;
  status: number;
  bytes: number;
}

const LINE = /"(GET|HEAD) \/v2\/[^ ]*\/blobs\/(sha256:[0-9a-f]{64}) HTTP\/[0-9.]+" (\d{3}) (\d+|-)/;

export function blobRequests(log: string): BlobRequest[] {
  const out: BlobRequest[] = [];
  for (const line of log.split('\n')) {
    const m = LINE.exec(line);
    if (m) out.push({ method: m[1] as string, digest: m[2] as string, status: Number(m[3]), bytes: m[4] === '-' ? 0 : Number(m[4]) });
  }
  return out;
}

/** Bytes of blob content the registry sent, per digest. */
export function bytesServed(log: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of blobRequests(log)) {
    if (r.method === 'GET') out.set(r.digest, (out.get(r.digest) ?? 0) + r.bytes);
  }
  return out;
}
