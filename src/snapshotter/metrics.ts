import { Histogram, Summary, type Registry } from 'prom-client';

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
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
