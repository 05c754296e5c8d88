/**
 * A promise-based client of containerd's Snapshots API. It talks either to
 * a snapshotter directly (lazysnap's own socket) or to containerd, which
 * routes by the `snapshotter` field and needs a namespace header.
 */
import * as grpc from '@grpc/grpc-js';
import { snapshotsClientConstructor } from './api.js';

export interface SnapshotInfoMessage {
  name: string;
  parent: string;
  kind: number;
  createdAt: { seconds: number; nanos: number } | null;
  updatedAt: { seconds: number; nanos: number } | null;
  labels: Record<string, string>;
}

export interface MountMessage {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export interface SnapshotsClientOptions {
  /** unix socket path */
  address: string;
  /** Snapshotter name, for calls through containerd. */
  snapshotter?: string;
  /** containerd namespace (sent as the containerd-namespace header). */
  namespace?: string;
  /** Per-call deadline in ms. */
  timeoutMs?: number;
}

type UnaryMethod = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, response: unknown) => void) => void;

export class SnapshotsClient {
  private readonly client: grpc.Client;
  private readonly snapshotter: string;
  private readonly namespace?: string;
  private readonly timeoutMs: number;

  constructor(options: SnapshotsClientOptions) {
    const Client = snapshotsClientConstructor();
    this.client = new Client(`unix://${options.address}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    });
    this.snapshotter = options.snapshotter ?? '';
    this.namespace = options.namespace;
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  close(): void {
    this.client.close();
  }

  async prepare(key: string, parent = '', labels: Record<string, string> = {}): Promise<MountMessage[]> {
    const res = (await this.unary('prepare', { key, parent, labels })) as { mounts: MountMessage[] };
    return res.mounts;
  }

  async view(key: string, parent = '', labels: Record<string, string> = {}): Promise<MountMessage[]> {
    const res = (await this.unary('view', { key, parent, labels })) as { mounts: MountMessage[] };
    return res.mounts;
  }

  async mounts(key: string): Promise<MountMessage[]> {
    const res = (await this.unary('mounts', { key })) as { mounts: MountMessage[] };
    return res.mounts;
  }

  async commit(name: string, key: string, labels: Record<string, string> = {}): Promise<void> {
    await this.unary('commit', { name, key, labels });
  }

  async remove(key: string): Promise<void> {
    await this.unary('remove', { key });
  }

  async stat(key: string): Promise<SnapshotInfoMessage> {
    const res = (await this.unary('stat', { key })) as { info: SnapshotInfoMessage };
    return res.info;
  }

  async update(info: Partial<SnapshotInfoMessage> & { name: string }, paths: string[] = []): Promise<SnapshotInfoMessage> {
    const res = (await this.unary('update', { info, updateMask: { paths } })) as { info: SnapshotInfoMessage };
    return res.info;
  }

  async usage(key: string): Promise<{ size: number; inodes: number }> {
    return (await this.unary('usage', { key })) as { size: number; inodes: number };
  }

  async cleanup(): Promise<void> {
    await this.unary('cleanup', {});
  }

  async list(filters: string[] = []): Promise<SnapshotInfoMessage[]> {
    const stream = (this.client as unknown as Record<string, (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<{ info: SnapshotInfoMessage[] }>>)
      .list!({ snapshotter: this.snapshotter, filters }, this.metadata(), { deadline: Date.now() + this.timeoutMs });
    const out: SnapshotInfoMessage[] = [];
    for await (const batch of stream) out.push(...(batch as { info: SnapshotInfoMessage[] }).info);
    return out;
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.namespace) md.set('containerd-namespace', this.namespace);
    return md;
  }

  private unary(method: string, request: Record<string, unknown>): Promise<unknown> {
    const fn = (this.client as unknown as Record<string, UnaryMethod>)[method];
    if (!fn) throw new Error(`no method ${method}`);
    return new Promise((resolve, reject) => {
      fn.call(this.client, { snapshotter: this.snapshotter, ...request }, this.metadata(), { deadline: Date.now() + this.timeoutMs }, (err, response) =>
        err ? reject(err) : resolve(response),
      );
    });
  }
}
