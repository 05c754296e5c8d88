/** `lazysnap status` for people: a few aligned tables, short digests, binary units. */
import type { DaemonStatus, LayerStatus } from './status-model.js';

export function formatStatus(status: DaemonStatus): string {
  const lines: string[] = [];
  lines.push(`lazysnap ${status.version}  pid ${status.pid}  up ${duration(status.uptimeSeconds)}  config ${status.config}`);
  lines.push(`socket ${status.address}  root ${status.root}`);
  lines.push('');
  const s = status.snapshots;
  lines.push(`Snapshots: ${s.active} active, ${s.committed} committed, ${s.view} view (${s.remote} remote)`);
  lines.push('');
  lines.push(...layerLines(status));
  lines.push('');
  lines.push(fuseManagerLine(status));
  lines.push(`FUSE mounts: ${status.mounts.length}`);
  for (const mount of status.mounts) lines.push(`  ${mount.mountpoint}  ${shortDigest(mount.digest)}  ${plural(mount.references, 'snapshot')}`);
  lines.push('');
  lines.push(...cacheLines(status));
  lines.push('');
  lines.push(...errorLines(status));
  return `${lines.join('\n')}\n`;
}

function layerLines(status: DaemonStatus): string[] {
  if (!status.remote.enabled) return ['Remote layers: off ([remote] enabled = false)'];
  if (status.remote.error !== undefined) return [`Remote layers: unknown (${status.remote.error})`];
  const layers = status.remote.layers;
  const mounted = layers.filter((layer) => layer.mountpoint !== undefined).length;
  const head = `Remote layers: ${layers.length} open, ${mounted} mounted`;
  if (layers.length === 0) return [head];
  const rows = layers.map((layer: LayerStatus) => [
    shortDigest(layer.digest),
    layer.ref,
    layer.size !== undefined ? bytes(layer.size) : '?',
    bytes(layer.cachedBytes),
    `${layer.cachedPercent.toFixed(1)}%`,
    bytes(layer.fetchedBytes),
    layer.backgroundFetch,
    String(layer.references),
  ]);
  return [head, ...table(['DIGEST', 'REF', 'SIZE', 'CACHED', '%', 'FETCHED', 'BACKGROUND FETCH', 'REFS'], rows, new Set([2, 3, 4, 5, 7]))];
}

function fuseManagerLine(status: DaemonStatus): string {
  const m = status.fuseManager;
  if (m === undefined) return 'FUSE served by: the daemon itself ([fuse_manager] enable = false)';
  const restarts = `${plural(m.restarts, 'restart')} seen`;
  if (!m.connected) return `FUSE manager: NOT CONNECTED (${m.socket})${m.error !== undefined ? `: ${m.error}` : ''}; ${restarts}`;
  return `FUSE manager: pid ${m.pid ?? '?'}  version ${m.version ?? '?'}  since ${m.startedAt ?? '?'}  ${plural(m.mounts ?? 0, 'mount')}  ${restarts}  socket ${m.socket}`;
}

function cacheLines(status: DaemonStatus): string[] {
  const c = status.caches;
  const tier = (name: string, t: DaemonStatus['caches']['memory']) =>
    t.limitBytes === 0 ? [name, 'off', '', ''] : [name, `${bytes(t.bytes)} / ${bytes(t.limitBytes)}`, plural(t.entries, 'chunk'), String(t.hits)];
  return [
    `Chunk cache: hit ratio ${c.hitRatio === null ? '-' : `${(c.hitRatio * 100).toFixed(1)}%`}, ${c.misses} fetched from the registry`,
    ...table(['TIER', 'USED / LIMIT', 'ENTRIES', 'HITS'], [tier('memory', c.memory), tier('disk', c.disk)], new Set([3])),
    `TOC cache: ${plural(c.toc.files, 'TOC')}, ${bytes(c.toc.bytes)}`,
  ];
}

function errorLines(status: DaemonStatus): string[] {
  const e = status.registryErrors;
  const window = duration(e.windowSeconds);
  if (e.inWindow === 0) return [`Registry errors in the last ${window}: none (${e.total} since start)`];
  const lines = [`Registry errors in the last ${window}: ${e.inWindow} (${e.total} since start)${e.recent.length < e.inWindow ? `, latest ${e.recent.length}` : ''}`];
  for (const err of e.recent) lines.push(`  ${err.time}  ${err.ref}  ${shortDigest(err.digest)}  ${err.kind}: ${err.message}`);
  return lines;
}

/** Columns padded to their widest cell; numeric columns right-aligned. */
function table(header: string[], rows: string[][], rightAligned: Set<number>): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    `  ${cells.map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd()}`;
  return [line(header), ...rows.map(line)];
}

export function shortDigest(digest: string): string {
  const colon = digest.indexOf(':');
  return colon < 0 ? digest.slice(0, 12) : `${digest.slice(0, colon + 1)}${digest.slice(colon + 1, colon + 13)}`;
}

export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function duration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${seconds % 60 > 0 ? `${seconds % 60}s` : ''}`;
  const hours = Math.floor(seconds / 3600);
  if (hours < 48) return `${hours}h${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(hours / 24)}d${hours % 24}h`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
