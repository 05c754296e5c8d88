import type { ContainerdConnection } from './connection.js';

const SERVICE = 'containerd.services.leases.v1.Leases';

/**
 * containerd leases: everything created while a lease is set on the
 * connection is kept from garbage collection until the lease is deleted.
 */
export class LeaseManager {
  constructor(private readonly conn: ContainerdConnection) {}

  /** Creates a lease that expires by itself after expireMs, in case we die holding it. */
  async create(id: string, expireMs: number): Promise<string> {
    const expire = new Date(Date.now() + expireMs).toISOString();
    await this.conn.unary(SERVICE, 'create', { id, labels: { 'containerd.io/gc.expire': expire } });
    return id;
  }

  async delete(id: string): Promise<void> {
    await this.conn.unary(SERVICE, 'delete', { id, sync: false });
  }

  async addResource(id: string, resource: { id: string; type: string }): Promise<void> {
    await this.conn.unary(SERVICE, 'addResource', { id, resource });
  }
}
