// A client of the CRI ImageService, as the kubelet would call it: on
// containerd's CRI socket, or on lazysnap's when its keychain is enabled.
import * as grpc from '@grpc/grpc-js';
import { loadProtos, lookupService } from '../../src/containerd/api.js';
import type { AuthConfig } from '../../src/cri/index.js';

export interface PullOptions {
  /** What kubelet sends from the pod's imagePullSecrets. */
  auth?: AuthConfig;
  timeoutMs?: number;
}

export class CriImageClient {
  private readonly client: grpc.Client;

  constructor(socket: string) {
    const Client = lookupService(loadProtos(['cri/runtime/v1/api.proto']), 'runtime.v1.ImageService');
    this.client = new Client(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  async pullImage(image: string, options: PullOptions | number = {}): Promise<string> {
    const { auth, timeoutMs } = typeof options === 'number' ? { auth: undefined, timeoutMs: options } : options;
    const res = await this.call<{ imageRef: string }>('pullImage', { image: { image }, ...(auth ? { auth } : {}) }, timeoutMs ?? 300_000);
    return res.imageRef;
  }

  /** The image's ID, or undefined when containerd does not have it. */
  async imageStatus(image: string): Promise<string | undefined> {
    const res = await this.call<{ image: { id: string } | null }>('imageStatus', { image: { image } }, 30_000);
    return res.image?.id || undefined;
  }

  async removeImage(image: string): Promise<void> {
    await this.call('removeImage', { image: { image } }, 60_000);
  }

  close(): void {
    this.client.close();
  }

  private call<T>(method: string, request: object, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      (this.client as unknown as Record<string, Function>)[method]!.call(
        this.client,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)),
      );
    });
  }
}
