// The remote-layer metrics as Prometheus scrapes them: observed per request
// (registry, FUSE) and read from the daemon's state at scrape time (caches,
// layers, background fetch).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { ChunkCacheStats } from '../../../src/layer/index.js';
import { RemoteMetrics, type RemoteLayerStatus } from '../../../src/snapshotter/index.js';
import { parsePrometheusText } from '../../harness/prometheus.js';


const layer = (over: Partial<RemoteLayerStatus>): RemoteLayerStatus => ({
  ref: 'r/x:1', digest: 'sha256:a', tocDigest: 'sha256:t', references: 1, chunkBytes: 100, cachedBytes: 0, fetchedBytes: 0, backgroundFetch: 'not-started', ...over,
});

describe('remote metrics', () => {
  it('counts registry requests and bytes by kind and outcome, with their latency', async () => {
    const registry = new Registry();
    const metrics = new RemoteMetrics(registry, { layers: () => [], chunkCache: () => ({ memoryHits: 0, diskHits: 0, misses: 0, memoryBytes: 0, memoryEntries: 0, disk: undefined }) });
    metrics.observeFetch({ ref: 'r', digest: 'd', kind: 'range', outcome: 'ok', bytes: 1000, seconds: 0.02 });
    metrics.observeFetch({ ref: 'r', digest: 'd', kind: 'range', outcome: 'ok', bytes: 24, seconds: 0.2 });
    metrics.observeFetch({ ref: 'r', digest: 'd', kind: 'tail', outcome: 'error', bytes: 0, seconds: 30 });
    const series = parsePrometheusText(await registry.metrics());
    assert.equal(series.get('lazysnap_registry_requests_total{kind="range",outcome="ok"}'), 2);
    assert.equal(series.get('lazysnap_registry_requests_total{kind="tail",outcome="error"}'), 1);
    assert.equal(series.get('lazysnap_registry_received_bytes_total'), 1024);
    assert.equal(series.get('lazysnap_registry_request_seconds_bucket{le="0.025",kind="range",outcome="ok"}'), 1);
    assert.equal(series.get('lazysnap_registry_request_seconds_count{kind="range",outcome="ok"}'), 2);
  });

  it('times FUSE operations and counts their errors by errno name, and the answers given at the deadline', async () => {
    const registry = new Registry();
    const metrics = new RemoteMetrics(registry, { layers: () => [], chunkCache: () => ({ memoryHits: 0, diskHits: 0, misses: 0, memoryBytes: 0, memoryEntries: 0, disk: undefined }) });
    metrics.observeFuse('read', 0.001, 4096, false);
    metrics.observeFuse('read', 0.5, -5, false);
    metrics.observeFuse('read', 2, -5, true);
    metrics.observeFuse('getattr', 0.00001, -2, false);
    metrics.observeFuse('getattr', 0.00001, 0, false);
    const series = parsePrometheusText(await registry.metrics());
    assert.equal(series.get('lazysnap_fuse_operation_seconds_count{operation="read"}'), 3);
    assert.equal(series.get('lazysnap_fuse_operation_seconds_count{operation="getattr"}'), 2);
    assert.equal(series.get('lazysnap_fuse_operation_errors_total{operation="read",errno="EIO"}'), 2);
    assert.equal(series.get('lazysnap_fuse_answer_timeouts_total{operation="read"}'), 1, 'an answer the deadline gave is counted apart');
    assert.equal(series.get('lazysnap_fuse_operation_errors_total{operation="getattr",errno="ENOENT"}'), 1);
  });

  it('reads cache lookups by tier, cache sizes, layers by background state and fetch progress at scrape time', async () => {
    const registry = new Registry();
    let cache: ChunkCacheStats = { memoryHits: 5, diskHits: 2, misses: 3, memoryBytes: 700, memoryEntries: 7, disk: { entries: 4, bytes: 4000, hits: 2, misses: 3, corruptions: 0, evictions: 0, writeErrors: 0 } };
    const layers = [
      layer({ digest: 'sha256:a', mountpoint: '/m/a', chunkBytes: 100, cachedBytes: 100, backgroundFetch: 'done' }),
      layer({ digest: 'sha256:b', mountpoint: '/m/b', chunkBytes: 300, cachedBytes: 30, backgroundFetch: 'fetching' }),
      layer({ digest: 'sha256:c', chunkBytes: 50, cachedBytes: 0, references: 0 }),
    ];
    new RemoteMetrics(registry, { layers: () => layers, chunkCache: () => cache });
    let series = parsePrometheusText(await registry.metrics());
    assert.equal(series.get('lazysnap_chunk_cache_lookups_total{tier="memory"}'), 5);
    assert.equal(series.get('lazysnap_chunk_cache_lookups_total{tier="disk"}'), 2);
    assert.equal(series.get('lazysnap_chunk_cache_lookups_total{tier="registry"}'), 3);
    assert.equal(series.get('lazysnap_chunk_cache_bytes{tier="memory"}'), 700);
    assert.equal(series.get('lazysnap_chunk_cache_bytes{tier="disk"}'), 4000);
    assert.equal(series.get('lazysnap_chunk_cache_entries{tier="disk"}'), 4);
    assert.equal(series.get('lazysnap_remote_layers_mounted'), 2);
    assert.equal(series.get('lazysnap_remote_layers{background_fetch="done"}'), 1);
    assert.equal(series.get('lazysnap_remote_layers{background_fetch="fetching"}'), 1);
    assert.equal(series.get('lazysnap_remote_layers{background_fetch="not-started"}'), 1);
    assert.equal(series.get('lazysnap_remote_layers{background_fetch="poisoned"}'), 0);
    assert.equal(series.get('lazysnap_remote_layer_chunk_bytes'), 450);
    assert.equal(series.get('lazysnap_remote_layer_cached_bytes'), 130);
    // Counters follow the cache's own, which only grow.
    cache = { ...cache, memoryHits: 9 };
    series = parsePrometheusText(await registry.metrics());
    assert.equal(series.get('lazysnap_chunk_cache_lookups_total{tier="memory"}'), 9);
  });
});
