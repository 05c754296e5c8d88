/** The snapshot model of containerd's Snapshots API. */
export enum Kind {
  Unknown = 0,
  View = 1,
  Active = 2,
  Committed = 3,
}

export type Labels = Record<string, string>;

export interface SnapshotInfo {
  /** The key (active, view) or name (committed). */
  name: string;
  parent: string;
  kind: Kind;
  /** Nanoseconds since the Unix epoch, as containerd's snapshotters keep them. */
  created: bigint;
  updated: bigint;
  labels: Labels;
}

export interface Usage {
  /** Bytes on disk (allocated blocks × 512), counting each inode once. */
  size: number;
  inodes: number;
}

export interface Mount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

export function kindName(kind: Kind): string {
  switch (kind) {
    case Kind.View:
      return 'view';
    case Kind.Active:
      return 'active';
    case Kind.Committed:
      return 'committed';
    default:
      return 'unknown';
  }
}
