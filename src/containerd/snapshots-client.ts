/**
 * A promise-based client of containerd's Snapshots API. It talks either to
 * a snapshotter directly (lazysnap's own socket) or to containerd, which
 * routes by the `snapshotter` field and needs a namespace (and, for pulls,
 * a lease) on every call.
 */
import { status } from '@grpc/grpc-js';
import { ContainerdConnection, isGrpcCode } from './connection.js';
import type { Timestamp } from './types.js';

const SERVICE = 'containerd.services.snapshots.v1.Snapshots';

export interface SnapshotInfoMessage {
  name: string;
  parent: string;
  kind: number;
  createdAt: Timestamp | null;
  updatedAt: Timestamp | null;
  labels: Record<string, string>;
}

export interface MountMessage {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export interface SnapshotsClientOptions {
  /** unix socket path; ignored when connection is given */
  address?: string;
  /** An existing connection to containerd (shares namespace and lease). */
  connection?: ContainerdConnection;
  /** Snapshotter name, for calls through containerd. */
  snapshotter?: string;
  /** containerd namespace (sent as the containerd-namespace header). */
  namespace?: string;
  /** Per-call deadline in ms. */
  timeoutMs?: number;
}

export class SnapshotsClient {
  private readonly conn: ContainerdConnection;
  private readonly ownsConnection: boolean;
  private readonly snapshotter: string;
  private readonly timeoutMs: number;

  constructor(options: SnapshotsClientOptions) {
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.ownsConnection = options.connection === undefined;
    this.conn = options.connection ?? new ContainerdConnection({ address: options.address ?? '', namespace: options.namespace ?? '', timeoutMs: this.timeoutMs });
    this.snapshotter = options.snapshotter ?? '';
  }

  close(): void {
    if (this.ownsConnection) this.conn.close();
  }

  async prepare(key: string, parent = '', labels: Record<string, string> = {}): Promise<MountMessage[]> {
    return (await this.call<{ mounts: MountMessage[] }>('prepare', { key, parent, labels })).mounts;
  }

  async view(key: string, parent = '', labels: Record<string, string> = {}): Promise<MountMessage[]> {
    return (await this.call<{ mounts: MountMessage[] }>('view', { key, parent, labels })).mounts;
  }

  async mounts(key: string): Promise<MountMessage[]> {
    return (await this.call<{ mounts: MountMessage[] }>('mounts', { key })).mounts;
  }

  async commit(name: string, key: string, labels: Record<string, string> = {}): Promise<void> {
    await this.call('commit', { name, key, labels });
  }

  async remove(key: string): Promise<void> {
    await this.call('remove', { key });
  }

  async stat(key: string): Promise<SnapshotInfoMessage> {
    return (await this.call<{ info: SnapshotInfoMessage }>('stat', { key })).info;
  }

  /** Whether the snapshot exists; errors other than NotFound are thrown. */
  async exists(key: string): Promise<boolean> {
    return (await this.statIfExists(key)) !== undefined;
  }

  /** The snapshot's info, or undefined when it does not exist; errors other than NotFound are thrown. */
  async statIfExists(key: string): Promise<SnapshotInfoMessage | undefined> {
    try {
      return await this.stat(key);
    } catch (err) {
      if (isGrpcCode(err, status.NOT_FOUND)) return undefined;
      throw err;
    }
  }

  /** Removes the snapshot if it is still there; errors other than NotFound are thrown. */
  async removeIfExists(key: string): Promise<void> {
    await this.remove(key).catch((err: unknown) => {
      if (!isGrpcCode(err, status.NOT_FOUND)) throw err;
    });
  }

  async update(info: Partial<SnapshotInfoMessage> & { name: string }, paths: string[] = []): Promise<SnapshotInfoMessage> {
    return (await this.call<{ info: SnapshotInfoMessage }>('update', { info, updateMask: { paths } })).info;
  }

  async usage(key: string): Promise<{ size: number; inodes: number }> {
    return this.call<{ size: number; inodes: number }>('usage', { key });
  }

  async cleanup(): Promise<void> {
    await this.call('cleanup', {});
  }

  async list(filters: string[] = []): Promise<SnapshotInfoMessage[]> {
    const out: SnapshotInfoMessage[] = [];
    const stream = this.conn.serverStream<{ info: SnapshotInfoMessage[] }>(SERVICE, 'list', { snapshotter: this.snapshotter, filters }, this.timeoutMs);
    for await (const batch of stream) out.push(...(batch as { info: SnapshotInfoMessage[] }).info);
    return out;
  }

  private call<T>(method: string, request: Record<string, unknown>): Promise<T> {
    return this.conn.unary<T>(SERVICE, method, { snapshotter: this.snapshotter, ...request }, this.timeoutMs);
  }
}
