/**
 * Downloads layer blobs from the registry into containerd's content store,
 * several at a time. One flight per digest in this process; across
 * processes, containerd's ref lock makes a second pull wait for the first.
 */
import type { Readable } from 'node:stream';
import { UNCOMPRESSED } from '../containerd/labels.js';
import type { ContentStore } from '../containerd/content.js';
import type { Descriptor } from '../containerd/types.js';
import type { RegistryClient } from '../registry/index.js';
import { SingleFlight } from '../sync/index.js';
import { PullError } from './errors.js';
import type { ProgressSink } from './progress.js';

export interface FetchLayersInput {
  ref: string;
  layers: ReadonlyArray<{ descriptor: Descriptor; diffId: string }>;
  registry: RegistryClient;
  content: ContentStore;
  progress: ProgressSink;
  concurrency: number;
  flights: SingleFlight<number>;
}

/** Returns the number of bytes this call downloaded. */
export async function fetchLayers(input: FetchLayersInput): Promise<number> {
  let next = 0;
  let downloaded = 0;
  const worker = async () => {
    for (let i = next++; i < input.layers.length; i = next++) {
      const layer = input.layers[i] as { descriptor: Descriptor; diffId: string };
      downloaded += await input.flights.do(layer.descriptor.digest, () => fetchOne(input, layer.descriptor, layer.diffId));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(input.concurrency, input.layers.length)) }, worker));
  return downloaded;
}

async function fetchOne(input: FetchLayersInput, desc: Descriptor, diffId: string): Promise<number> {
  const { registry, content, progress, ref } = input;
  let bytes = 0;
  try {
    const wrote = await content.write(
      `layer-${desc.digest}`,
      desc,
      (offset) => blobFrom(registry, ref, desc, offset, (n) => {
        bytes += n;
      }),
      {
        labels: { [UNCOMPRESSED]: diffId },
        onProgress: (written, total) => progress.layer(desc.digest, 'downloading', written, total),
      },
    );
    progress.layer(desc.digest, wrote ? 'downloaded' : 'exists', desc.size, desc.size);
    return bytes;
  } catch (err) {
    throw new PullError(`download failed: ${(err as Error).message}`, ref, desc.digest, { cause: err });
  }
}

/** The blob from offset on; a resumed write skips what containerd already holds. */
async function* blobFrom(registry: RegistryClient, ref: string, desc: Descriptor, offset: number, count: (n: number) => void): AsyncIterable<Buffer> {
  const { stream } = await registry.openBlob(ref, desc.digest, { size: desc.size });
  let skip = offset;
  for await (const chunk of stream as Readable) {
    const buf = chunk as Buffer;
    count(buf.length);
    if (skip >= buf.length) {
      skip -= buf.length;
      continue;
    }
    yield skip > 0 ? buf.subarray(skip) : buf;
    skip = 0;
  }
}
