// A client of the CRI ImageService that containerd's CRI plugin serves on
// its socket, as the kubelet would call it.
import * as grpc from '@grpc/grpc-js';
import { loadProtos, lookupService } from '../../src/containerd/api.js';

export class CriImageClient {
  private readonly client: grpc.Client;

  constructor(socket: string) {
    const Client = lookupService(loadProtos(['cri/runtime/v1/api.proto']), 'runtime.v1.ImageService');
    this.client = new Client(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  pullImage(image: string, timeoutMs = 300_000): Promise<string> {
    return new Promise((resolve, reject) => {
      (this.client as unknown as Record<string, Function>).pullImage!.call(
        this.client,
        { image: { image } },
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err: grpc.ServiceError | null, res: { imageRef: string }) => (err ? reject(err) : resolve(res.imageRef)),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
