/**
 * One gRPC channel to containerd, shared by the service clients. Every call
 * carries the namespace header containerd requires and, when set, the lease
 * that protects what the call creates from garbage collection.
 */
import * as grpc from '@grpc/grpc-js';
import { loadProtos, lookupService } from './api.js';

export interface ConnectionOptions {
  /** containerd's unix socket, e.g. /run/containerd/containerd.sock */
  address: string;
  /** containerd namespace; empty when talking to a snapshotter directly. */
  namespace: string;
  /** Default per-call deadline. */
  timeoutMs?: number;
}

const PROTOS = [
  'containerd/services/snapshots/v1/snapshots.proto',
  'containerd/services/content/v1/content.proto',
  'containerd/services/images/v1/images.proto',
  'containerd/services/leases/v1/leases.proto',
  'containerd/services/diff/v1/diff.proto',
];

type Callback = (err: grpc.ServiceError | null, response: unknown) => void;
type UnaryFn = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: Callback) => void;

export class ContainerdConnection {
  readonly namespace: string;
  private readonly channelOptions: grpc.ChannelOptions = { 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 };
  private readonly clients = new Map<string, grpc.Client>();
  private readonly root: grpc.GrpcObject;
  private readonly target: string;
  private readonly timeoutMs: number;
  /** Lease id sent with every call while set. */
  lease?: string;

  constructor(options: ConnectionOptions) {
    this.namespace = options.namespace;
    this.target = `unix://${options.address}`;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.root = loadProtos(PROTOS);
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.namespace) md.set('containerd-namespace', this.namespace);
    if (this.lease) md.set('containerd-lease', this.lease);
    return md;
  }

  client(service: string): grpc.Client {
    let client = this.clients.get(service);
    if (!client) {
      const Client = lookupService(this.root, service);
      // All services share one channel: grpc-js pools by target and options.
      client = new Client(this.target, grpc.credentials.createInsecure(), this.channelOptions);
      this.clients.set(service, client);
    }
    return client;
  }

  unary<T>(service: string, method: string, request: Record<string, unknown>, timeoutMs = this.timeoutMs): Promise<T> {
    const client = this.client(service);
    const fn = (client as unknown as Record<string, UnaryFn>)[method];
    if (typeof fn !== 'function') return Promise.reject(new Error(`${service} has no method ${method}`));
    return new Promise((resolve, reject) => {
      fn.call(client, request, this.metadata(), { deadline: Date.now() + timeoutMs }, (err, response) => (err ? reject(err) : resolve(response as T)));
    });
  }

  serverStream<T>(service: string, method: string, request: Record<string, unknown>, timeoutMs = this.timeoutMs): grpc.ClientReadableStream<T> {
    const client = this.client(service) as unknown as Record<string, (req: unknown, md: grpc.Metadata, options: grpc.CallOptions) => grpc.ClientReadableStream<T>>;
    return client[method]!.call(this.client(service), request, this.metadata(), { deadline: Date.now() + timeoutMs });
  }

  duplexStream<Req, Res>(service: string, method: string): grpc.ClientDuplexStream<Req, Res> {
    const client = this.client(service) as unknown as Record<string, (md: grpc.Metadata) => grpc.ClientDuplexStream<Req, Res>>;
    return client[method]!.call(this.client(service), this.metadata());
  }
}

export function isGrpcCode(err: unknown, code: grpc.status): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: number }).code === code;
}
