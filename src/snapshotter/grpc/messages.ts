/**
 * Requests of the Snapshots API as proto-loader decodes them, and the
 * conversions between its messages and the snapshotter's model. The message
 * shapes themselves are the ones the client in src/containerd uses.
 */
import type { MountMessage, SnapshotInfoMessage as InfoMessage } from '../../containerd/snapshots-client.js';
import type { Timestamp } from '../../containerd/types.js';
import type { Labels, Mount, SnapshotInfo } from '../types.js';

export interface KeyRequest {
  snapshotter: string;
  key: string;
}

export interface CreateRequest extends KeyRequest {
  parent: string;
  labels: Labels;
}

export interface CommitRequest extends KeyRequest {
  name: string;
  labels: Labels;
}

export interface UpdateRequest {
  snapshotter: string;
  info: InfoMessage | null;
  updateMask: { paths: string[] } | null;
}

export interface ListRequest {
  snapshotter: string;
  filters: string[];
}

const NS_PER_SECOND = 1_000_000_000n;

/** A protobuf Timestamp of nanoseconds since the epoch; nanos is never negative, as the proto requires. */
export function toTimestamp(ns: bigint): Timestamp {
  let seconds = ns / NS_PER_SECOND;
  let nanos = ns % NS_PER_SECOND;
  if (nanos < 0n) {
    seconds -= 1n;
    nanos += NS_PER_SECOND;
  }
  return { seconds: Number(seconds), nanos: Number(nanos) };
}

export function toInfoMessage(info: SnapshotInfo): InfoMessage {
  return {
    name: info.name,
    parent: info.parent,
    kind: info.kind,
    createdAt: toTimestamp(info.created),
    updatedAt: toTimestamp(info.updated),
    labels: info.labels,
  };
}

export function toMountMessages(mounts: Mount[]): MountMessage[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: m.options }));
}
