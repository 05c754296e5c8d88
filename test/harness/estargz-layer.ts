// An eStargz blob made by the project's writer, stored in an OCI layout
// directory as a layer with its TOC digest annotation, ready for
// writeManifest() and pushImage().
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { TOC_DIGEST_ANNOTATION } from '../../src/estargz/index.js';
import type { BuiltLayer } from './image.js';

export function storeEstargzLayer(layoutDir: string, blob: Buffer, tocDigest: string): BuiltLayer {
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  mkdirSync(join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(layoutDir, 'blobs', 'sha256', digest.slice(7)), blob);
  return {
    digest, size: blob.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    diffId: `sha256:${createHash('sha256').update(gunzipSync(blob)).digest('hex')}`,
    annotations: { [TOC_DIGEST_ANNOTATION]: tocDigest },
  };
}
