import * as grpc from '@grpc/grpc-js';
import { snapshotsServiceDefinition } from '../../containerd/api.js';
import { prepareSocketPath, restrictSocket } from './unix-socket.js';

/** A gRPC server on a unix socket serving the Snapshots API (and whatever else is added to it). */
export class SnapshotsServer {
  private readonly server = new grpc.Server({
    // Large List answers and long label sets must not hit the 4 MiB default.
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });

  constructor(implementation: grpc.UntypedServiceImplementation) {
    this.server.addService(snapshotsServiceDefinition(), implementation);
  }

  /** Serves another service on the same socket (the CRI image service of the keychain); call before listen(). */
  addService(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
    this.server.addService(definition, implementation);
  }

  async listen(socketPath: string): Promise<void> {
    await prepareSocketPath(socketPath);
    await new Promise<void>((resolve, reject) => {
      this.server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
    });
    await restrictSocket(socketPath);
  }

  /** Stops accepting calls and waits for in-flight ones; forces after graceMs. */
  async shutdown(graceMs = 10_000): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
