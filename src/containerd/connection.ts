/**
 * One gRPC channel to containerd, shared by the service clients. Every call
 * carries the namespace header containerd requires and, when set, the lease
 * that protects what the call creates from garbage collection. A peer that
 * cannot be reached is reported in words (PeerUnreachableError,
 * SnapshotterUnreachableError), never as a bare gRPC status.
 */
import * as grpc from '@grpc/grpc-js';
import { loadProtos, lookupService } from './api.js';
import { PeerUnreachableError, SnapshotterUnreachableError } from './errors.js';

export interface ConnectionOptions {
  /** containerd's unix socket, e.g. /run/containerd/containerd.sock */
  address: string;
  /** containerd namespace; empty when talking to a snapshotter directly. */
  namespace: string;
  /** Default per-call deadline. */
  timeoutMs?: number;
  /**
   * How long a call routed to a proxy snapshotter is retried while containerd
   * cannot dial it. containerd redials with a backoff of up to 3 s (+20 %
   * jitter), so a daemon that has just started needs that long to be seen.
   */
  snapshotterWaitMs?: number;
}

/** The proto file of each service; a command parses only those it calls. */
const SERVICE_PROTOS: Readonly<Record<string, string>> = {
  'containerd.services.snapshots.v1.Snapshots': 'containerd/services/snapshots/v1/snapshots.proto',
  'containerd.services.content.v1.Content': 'containerd/services/content/v1/content.proto',
  'containerd.services.images.v1.Images': 'containerd/services/images/v1/images.proto',
  'containerd.services.leases.v1.Leases': 'containerd/services/leases/v1/leases.proto',
  'containerd.services.diff.v1.Diff': 'containerd/services/diff/v1/diff.proto',
};

/**
 * Client constructors by service, for the life of the process: parsing a
 * .proto file takes milliseconds of CPU, and the daemon builds a connection
 * for every pull handed to it.
 */
const clientConstructors = new Map<string, grpc.ServiceClientConstructor>();

function clientConstructor(service: string): grpc.ServiceClientConstructor {
  let Client = clientConstructors.get(service);
  if (!Client) {
    const proto = SERVICE_PROTOS[service];
    if (proto === undefined) throw new Error(`no proto file known for service ${service}`);
    Client = lookupService(loadProtos([proto]), service);
    clientConstructors.set(service, Client);
  }
  return Client;
}

/**
 * Parses every service's definitions ahead of the first connection, one per
 * turn of the event loop so that calls being served meanwhile wait for one
 * file at most (the daemon, before the first pull is handed to it).
 */
export async function preloadContainerdClients(): Promise<void> {
  for (const service of Object.keys(SERVICE_PROTOS)) {
    await new Promise((resolve) => setImmediate(resolve));
    clientConstructor(service);
  }
}

const DEFAULT_SNAPSHOTTER_WAIT_MS = 6_000;
const SNAPSHOTTER_RETRY_DELAY_MS = 250;

type Callback = (err: grpc.ServiceError | null, response: unknown) => void;
type UnaryFn = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: Callback) => void;

export class ContainerdConnection {
  readonly namespace: string;
  private readonly channelOptions: grpc.ChannelOptions = { 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 };
  private readonly clients = new Map<string, grpc.Client>();
  private readonly address: string;
  private readonly target: string;
  private readonly timeoutMs: number;
  private readonly snapshotterWaitMs: number;
  /** Lease id sent with every call while set. */
  lease?: string;

  constructor(options: ConnectionOptions) {
    this.namespace = options.namespace;
    this.address = options.address;
    this.target = `unix://${options.address}`;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.snapshotterWaitMs = options.snapshotterWaitMs ?? DEFAULT_SNAPSHOTTER_WAIT_MS;
  }

  /** What is at the other end: containerd, or (without a namespace) a snapshotter spoken to directly. */
  get peer(): 'containerd' | 'snapshotter' {
    return this.namespace ? 'containerd' : 'snapshotter';
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
      const Client = clientConstructor(service);
      // All services share one channel: grpc-js pools by target and options.
      client = new Client(this.target, grpc.credentials.createInsecure(), this.channelOptions);
      this.clients.set(service, client);
    }
    return client;
  }

  /**
   * A unary call. While containerd reports that it cannot dial the proxy
   * snapshotter the call is routed to, the call is repeated (it never reached
   * the snapshotter, so repeating it is safe) for up to snapshotterWaitMs.
   */
  async unary<T>(service: string, method: string, request: Record<string, unknown>, timeoutMs = this.timeoutMs): Promise<T> {
    const started = Date.now();
    for (;;) {
      try {
        return await this.unaryOnce<T>(service, method, request, timeoutMs);
      } catch (err) {
        const unreachable = this.unreachableError(service, err);
        if (unreachable) throw unreachable;
        const dial = proxyDialFailure(err);
        if (!dial) throw err;
        const waited = Date.now() - started;
        if (waited + SNAPSHOTTER_RETRY_DELAY_MS > this.snapshotterWaitMs) {
          const snapshotter = typeof request.snapshotter === 'string' && request.snapshotter !== '' ? request.snapshotter : service;
          throw new SnapshotterUnreachableError(snapshotter, dial.socket, grpc.status.UNAVAILABLE, waited, { cause: err });
        }
        await new Promise((resolve) => setTimeout(resolve, SNAPSHOTTER_RETRY_DELAY_MS));
      }
    }
  }

  /**
   * The peer itself is unreachable when a call fails UNAVAILABLE while the
   * channel is not connected (a server's own UNAVAILABLE arrives over a
   * READY channel).
   */
  private unreachableError(service: string, err: unknown): PeerUnreachableError | undefined {
    if (isGrpcCode(err, grpc.status.UNAVAILABLE)) {
      const state = this.clients.get(service)?.getChannel().getConnectivityState(false);
      if (state === grpc.connectivityState.READY) return undefined;
      return new PeerUnreachableError(this.peer, this.address, grpc.status.UNAVAILABLE, { cause: err });
    }
    return undefined;
  }

  private unaryOnce<T>(service: string, method: string, request: Record<string, unknown>, timeoutMs: number): Promise<T> {
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

/**
 * containerd's answer when it could not dial a proxy plugin (grpc-go:
 * `connection error: desc = "transport: Error while dialing dial unix
 * /run/lazysnap/lazysnap.sock: connect: ..."`), with the socket when named.
 */
function proxyDialFailure(err: unknown): { socket?: string } | undefined {
  if (!isGrpcCode(err, grpc.status.UNAVAILABLE)) return undefined;
  const details = String((err as { details?: unknown }).details ?? '');
  if (!/error while dialing/i.test(details)) return undefined;
  const socket = /dial unix:?(?:\/\/)?(\/[^:"\s]+)/.exec(details)?.[1];
  return socket === undefined ? {} : { socket };
}

export function isGrpcCode(err: unknown, code: grpc.status): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: number }).code === code;
}
