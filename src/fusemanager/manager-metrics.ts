import { Counter, Gauge, type Registry } from 'prom-client';
import type { ManagedMounter } from './managed-mounter.js';

/** The daemon's view of its FUSE manager, beside the manager's own metrics (which the daemon's /metrics passes on). */
export function registerManagerMetrics(registry: Registry, mounter: ManagedMounter): void {
  new Gauge({
    name: 'lazysnap_fuse_manager_connected',
    help: '1 while the daemon has a connection to the FUSE manager that serves the lazy layers, else 0.',
    registers: [registry],
    collect() {
      this.set(mounter.isConnected ? 1 : 0);
    },
  });
  let counted = 0;
  new Counter({
    name: 'lazysnap_fuse_manager_restarts_total',
    help: 'Times the daemon found a new FUSE manager after losing one (every layer was mounted again; containers running on the old mounts lost them).',
    registers: [registry],
    collect() {
      const restarts = mounter.restarts;
      if (restarts > counted) this.inc(restarts - counted);
      counted = restarts;
    },
  });
}
