/** An OCI descriptor as containerd's API carries it. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface Timestamp {
  seconds: number;
  nanos: number;
}
