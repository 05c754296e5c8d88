// Open-file table. open() hands the kernel a small number and read() gets it
// back, so a read goes straight to the node that was opened without another
// path lookup.
import type { FsNode } from './types.js';

// fuse-native passes fh to and from JS as a uint32 and ignores 0 ("leave fh
// unset"), so numbers live in [1, 2^31).
const MAX_HANDLE = 0x7fffffff;

export class FileHandles {
  private readonly open = new Map<number, FsNode>();
  private next = 1;

  add(node: FsNode): number {
    // Skip numbers still in use after wrapping around; the table is far
    // smaller than the number space, so this terminates quickly.
    while (this.open.has(this.next)) this.advance();
    const fh = this.next;
    this.advance();
    this.open.set(fh, node);
    return fh;
  }

  get(fh: number): FsNode | undefined {
    return this.open.get(fh);
  }

  delete(fh: number): void {
    this.open.delete(fh);
  }

  get size(): number {
    return this.open.size;
  }

  private advance(): void {
    this.next = this.next >= MAX_HANDLE ? 1 : this.next + 1;
  }
}
