import { status } from '@grpc/grpc-js';
import { isGrpcCode, type ContainerdConnection } from './connection.js';
import type { Descriptor } from './types.js';

const SERVICE = 'containerd.services.images.v1.Images';

export interface ImageRecord {
  name: string;
  labels: Record<string, string>;
  target: Descriptor;
}

/** containerd's image store: names pointing at a manifest or index. */
export class ImageStore {
  constructor(private readonly conn: ContainerdConnection) {}

  async get(name: string): Promise<ImageRecord | undefined> {
    try {
      const res = await this.conn.unary<{ image: ImageRecord }>(SERVICE, 'get', { name });
      return res.image;
    } catch (err) {
      if (isGrpcCode(err, status.NOT_FOUND)) return undefined;
      throw err;
    }
  }

  /** Creates the image record, or points an existing one at the new target (as `ctr images pull` does). */
  async createOrUpdate(image: ImageRecord): Promise<void> {
    try {
      await this.conn.unary(SERVICE, 'create', { image });
    } catch (err) {
      if (!isGrpcCode(err, status.ALREADY_EXISTS)) throw err;
      await this.conn.unary(SERVICE, 'update', { image, updateMask: { paths: ['target', 'labels'] } });
    }
  }

  async delete(name: string): Promise<void> {
    await this.conn.unary(SERVICE, 'delete', { name, sync: true });
  }
}
