/**
 * A TocIndex in a form that survives postMessage, so a TOC can be parsed on
 * a worker thread and used on the main one. Structured cloning keeps typed
 * arrays, strings, plain objects and Maps, but not classes: the digest table
 * travels as its bytes and Buffers arrive as plain Uint8Arrays, so both are
 * rebuilt here. transferList() names the backing stores that can move
 * instead of being copied (a huge TOC's table is tens of MiB).
 */
import { DigestTable } from './digest-table.js';
import { TocIndex } from './toc-index.js';
import { TocTable, type ChunkColumns, type DeviceNumbers, type DirentColumns, type NodeColumns } from './toc-table.js';

export interface TransferableTocIndex {
  tocDigest: string;
  tocOffset: number;
  entryCount: number;
  nodes: NodeColumns;
  chunks: ChunkColumns;
  dirents: DirentColumns;
  chunksByOffset: Uint32Array;
  strings: readonly string[];
  digests: Uint8Array;
  linkNames: ReadonlyMap<number, string>;
  devices: ReadonlyMap<number, DeviceNumbers>;
  xattrs: ReadonlyMap<number, ReadonlyMap<string, Uint8Array>>;
  stringBytes: number;
}

export function toTransferable(index: TocIndex): TransferableTocIndex {
  const { table } = index;
  return {
    tocDigest: index.tocDigest,
    tocOffset: index.tocOffset,
    entryCount: index.entryCount,
    nodes: table.nodes,
    chunks: table.chunks,
    dirents: table.dirents,
    chunksByOffset: table.chunksByOffset,
    strings: table.strings,
    digests: table.digests.sealedBytes,
    linkNames: table.linkNames,
    devices: table.devices,
    xattrs: table.xattrs,
    stringBytes: table.stringBytes,
  };
}

export function fromTransferable(message: TransferableTocIndex): TocIndex {
  const xattrs = new Map<number, ReadonlyMap<string, Buffer>>();
  for (const [node, values] of message.xattrs) {
    const rebuilt = new Map<string, Buffer>();
    for (const [key, value] of values) rebuilt.set(key, Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    xattrs.set(node, rebuilt);
  }
  const table = new TocTable({
    nodes: message.nodes,
    chunks: message.chunks,
    dirents: message.dirents,
    chunksByOffset: message.chunksByOffset,
    strings: message.strings as string[],
    digests: DigestTable.fromSealed(message.digests),
    linkNames: new Map(message.linkNames),
    devices: new Map(message.devices),
    xattrs,
    stringBytes: message.stringBytes,
  });
  return TocIndex.fromTable(table, message.tocDigest, message.tocOffset, message.entryCount);
}

/**
 * The ArrayBuffers a message can hand over instead of copying: those that
 * back exactly one of its arrays. A buffer that also holds other data (a
 * small Buffer carved from Node's shared pool) is left to be copied.
 */
export function transferList(message: TransferableTocIndex): ArrayBuffer[] {
  const arrays: ArrayBufferView[] = [...Object.values(message.nodes), ...Object.values(message.chunks), ...Object.values(message.dirents), message.chunksByOffset, message.digests]
    .filter((column): column is ArrayBufferView => ArrayBuffer.isView(column));
  const seen = new Set<ArrayBufferLike>();
  const out: ArrayBuffer[] = [];
  for (const view of arrays) {
    const buffer = view.buffer;
    if (!(buffer instanceof ArrayBuffer) || seen.has(buffer) || view.byteOffset !== 0 || view.byteLength !== buffer.byteLength) continue;
    seen.add(buffer);
    out.push(buffer);
  }
  return out;
}
