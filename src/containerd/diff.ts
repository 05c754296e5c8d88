import type { ContainerdConnection } from './connection.js';
import type { Descriptor } from './types.js';

const SERVICE = 'containerd.services.diff.v1.Diff';

export interface MountSpec {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

/** containerd's diff service: unpacks a layer from the content store onto mounts. */
export class DiffService {
  constructor(private readonly conn: ContainerdConnection) {}

  /** Applies the layer and returns the descriptor of what was applied (digest = the diffID). */
  async apply(layer: Descriptor, mounts: MountSpec[], timeoutMs = 30 * 60_000): Promise<Descriptor> {
    const res = await this.conn.unary<{ applied: Descriptor }>(SERVICE, 'apply', { diff: layer, mounts, payloads: {} }, timeoutMs);
    return res.applied;
  }
}
