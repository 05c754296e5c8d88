import { constants as osConstants } from 'node:os';
import { Counter, Gauge, Histogram, Summary, type Registry } from 'prom-client';
import type { FuseOperationObserver } from '../fuse/index.js';
import type { ChunkCacheStats, FetchEvent } from '../layer/index.js';
import type { RemoteLayerStatus } from './remote/remote-layer-status.js';

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Registry round trips: a few ms on a LAN mirror up to the 30 s default deadline. */
const FETCH_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const LOCK_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1];

/**
 * What the snapshotter measures about itself: latency of every gRPC call and
 * how long each metadata write transaction holds the store. The summary
 * gives the benchmark exact-enough p50/p99/max without a Prometheus server.
 */
export class SnapshotterMetrics {
  private readonly callLatency: Histogram<'method' | 'code'>;
  private readonly lockHold: Histogram<'operation'>;
  private readonly lockHoldSummary: Summary<'operation'>;

  constructor(registry: Registry) {
    this.callLatency = new Histogram({
      name: 'lazysnap_snapshots_call_seconds',
      help: 'Latency of Snapshots API calls, by method and gRPC status code.',
      labelNames: ['method', 'code'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
    this.lockHold = new Histogram({
      name: 'lazysnap_metadata_lock_hold_seconds',
      help: 'Time one metadata write transaction holds the store.',
      labelNames: ['operation'],
      buckets: LOCK_BUCKETS,
      registers: [registry],
    });
    this.lockHoldSummary = new Summary({
      name: 'lazysnap_metadata_lock_hold_quantile_seconds',
      help: 'Quantiles of metadata write transaction hold time (1 = max).',
      labelNames: ['operation'],
      percentiles: [0.5, 0.9, 0.99, 1],
      registers: [registry],
    });
  }

  observeCall(method: string, code: string, seconds: number): void {
    this.callLatency.observe({ method, code }, seconds);
  }

  observeLockHold(operation: string, seconds: number): void {
    this.lockHold.observe({ operation }, seconds);
    this.lockHoldSummary.observe({ operation: 'all' }, seconds);
  }
}


/** What the remote-layer gauges are read from, at scrape time. */
export interface RemoteStateSource {
  layers(): RemoteLayerStatus[];
  chunkCache(): ChunkCacheStats;
}

/** A layer walk costs a pass over its chunk table: one per scrape, shared by every gauge that needs it. */
const LAYER_SNAPSHOT_MS = 1_000;

const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([name, value]) => [value, name]));

/**
 * What lazy layers cost and how they are doing: registry requests, bytes and
 * latency (observed per request), FUSE operation latency and errors (observed
 * per answer: one histogram observe), and, read only when scraped, chunk
 * cache hits by tier, cache sizes, open layers by background-fetch state and
 * how much of them is local.
 */
export class RemoteMetrics {
  private readonly registryRequests: Counter<'kind' | 'outcome'>;
  private readonly registryBytes: Counter;
  private readonly registrySeconds: Histogram<'kind' | 'outcome'>;
  private readonly fuseSeconds: Histogram<'operation'>;
  private readonly fuseErrors: Counter<'operation' | 'errno'>;
  private readonly fuseTimeouts: Counter<'operation'>;
  private layerSnapshot: { at: number; layers: RemoteLayerStatus[] } | undefined;

  constructor(registry: Registry, private readonly source: RemoteStateSource) {
    const registers = [registry];
    this.registryRequests = new Counter({
      name: 'lazysnap_registry_requests_total',
      help: 'Blob requests lazy layers made of registries, by kind (range, tail, size) and outcome (ok, error, cancelled).',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.registryBytes = new Counter({
      name: 'lazysnap_registry_received_bytes_total',
      help: 'Blob bytes lazy layers received from registries.',
      registers,
    });
    this.registrySeconds = new Histogram({
      name: 'lazysnap_registry_request_seconds',
      help: 'Latency of blob requests to registries, by kind and outcome.',
      labelNames: ['kind', 'outcome'],
      buckets: FETCH_BUCKETS,
      registers,
    });
    this.fuseSeconds = new Histogram({
      name: 'lazysnap_fuse_operation_seconds',
      help: 'Time from a FUSE request reaching the process that serves the mount to its answer, by operation.',
      labelNames: ['operation'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.fuseErrors = new Counter({
      name: 'lazysnap_fuse_operation_errors_total',
      help: 'FUSE requests answered with an error, by operation and errno (ENOENT on lookups is normal; EIO on read is a failed fetch).',
      labelNames: ['operation', 'errno'],
      registers,
    });
    this.fuseTimeouts = new Counter({
      name: 'lazysnap_fuse_answer_timeouts_total',
      help: 'FUSE requests answered EIO because no answer was ready within [remote] fuse_answer_timeout_seconds, by operation (also counted in lazysnap_fuse_operation_errors_total).',
      labelNames: ['operation'],
      registers,
    });
    this.registerCollected(registry);
  }

  readonly observeFetch = (event: FetchEvent): void => {
    const labels = { kind: event.kind, outcome: event.outcome };
    this.registryRequests.inc(labels);
    this.registrySeconds.observe(labels, event.seconds);
    if (event.bytes > 0) this.registryBytes.inc(event.bytes);
  };

  readonly observeFuse: FuseOperationObserver = (operation, seconds, code, timedOut) => {
    this.fuseSeconds.observe({ operation }, seconds);
    if (code < 0) this.fuseErrors.inc({ operation, errno: ERRNO_NAMES.get(-code) ?? String(-code) });
    if (timedOut) this.fuseTimeouts.inc({ operation });
  };

  private layers(): RemoteLayerStatus[] {
    const now = Date.now();
    if (this.layerSnapshot === undefined || now - this.layerSnapshot.at > LAYER_SNAPSHOT_MS) {
      this.layerSnapshot = { at: now, layers: this.source.layers() };
    }
    return this.layerSnapshot.layers;
  }

  /** Series computed from the daemon's state when Prometheus scrapes, so the hot paths pay nothing for them. */
  private registerCollected(registry: Registry): void {
    const registers = [registry];
    const source = this.source;
    const layers = () => this.layers();
    new Counter({
      name: 'lazysnap_chunk_cache_lookups_total',
      help: 'Chunk lookups by lazy reads, by the tier that had the chunk: memory, disk, or registry (in neither cache, so fetched).',
      labelNames: ['tier'],
      registers,
      collect() {
        const stats = source.chunkCache();
        this.reset();
        this.inc({ tier: 'memory' }, stats.memoryHits);
        this.inc({ tier: 'disk' }, stats.diskHits);
        this.inc({ tier: 'registry' }, stats.misses);
      },
    });
    new Gauge({
      name: 'lazysnap_chunk_cache_bytes',
      help: 'Chunk bytes held by the chunk cache, by tier.',
      labelNames: ['tier'],
      registers,
      collect() {
        const stats = source.chunkCache();
        this.set({ tier: 'memory' }, stats.memoryBytes);
        this.set({ tier: 'disk' }, stats.disk?.bytes ?? 0);
      },
    });
    new Gauge({
      name: 'lazysnap_chunk_cache_entries',
      help: 'Chunks held by the chunk cache, by tier.',
      labelNames: ['tier'],
      registers,
      collect() {
        const stats = source.chunkCache();
        this.set({ tier: 'memory' }, stats.memoryEntries);
        this.set({ tier: 'disk' }, stats.disk?.entries ?? 0);
      },
    });
    new Gauge({
      name: 'lazysnap_remote_layers_mounted',
      help: 'Remote layers mounted over FUSE.',
      registers,
      collect() {
        this.set(layers().filter((layer) => layer.mountpoint !== undefined).length);
      },
    });
    const states = ['not-started', 'waiting-for-idle', 'fetching', 'done', 'incomplete', 'poisoned'] as const;
    new Gauge({
      name: 'lazysnap_remote_layers',
      help: 'Open remote layers by background fetch state (not-started, waiting-for-idle, fetching, done, incomplete, poisoned).',
      labelNames: ['background_fetch'],
      registers,
      collect() {
        const counts = new Map<string, number>(states.map((state) => [state, 0]));
        for (const layer of layers()) counts.set(layer.backgroundFetch, (counts.get(layer.backgroundFetch) ?? 0) + 1);
        for (const [state, count] of counts) this.set({ background_fetch: state }, count);
      },
    });
    new Gauge({
      name: 'lazysnap_remote_layer_chunk_bytes',
      help: 'Compressed chunk bytes of all open remote layers (what a complete background fetch caches).',
      registers,
      collect() {
        this.set(layers().reduce((sum, layer) => sum + layer.chunkBytes, 0));
      },
    });
    new Gauge({
      name: 'lazysnap_remote_layer_cached_bytes',
      help: 'Compressed chunk bytes of all open remote layers now in the chunk cache (background fetch progress: divide by lazysnap_remote_layer_chunk_bytes).',
      registers,
      collect() {
        this.set(layers().reduce((sum, layer) => sum + layer.cachedBytes, 0));
      },
    });
  }
}
