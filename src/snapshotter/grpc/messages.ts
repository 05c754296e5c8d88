/** Shapes of the Snapshots API messages as proto-loader decodes and encodes them. */
import { Kind, type Labels, type Mount, type SnapshotInfo } from '../types.js';

export interface Timestamp {
  seconds: number;
  nanos: number;
}

export interface InfoMessage {
  name: string;
  parent: string;
  kind: number;
  createdAt: Timestamp | null;
  updatedAt: Timestamp | null;
  labels: Labels;
}

export interface MountMessage {
  type: string;
  source: string;
  target: string;
  options: string[];
}

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

export function toTimestamp(date: Date): Timestamp {
  const ms = date.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}

export function fromTimestamp(ts: Timestamp | null | undefined): Date {
  if (!ts) return new Date(0);
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000));
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

export function fromInfoMessage(message: InfoMessage): SnapshotInfo {
  return {
    name: message.name,
    parent: message.parent,
    kind: message.kind as Kind,
    created: fromTimestamp(message.createdAt),
    updated: fromTimestamp(message.updatedAt),
    labels: message.labels ?? {},
  };
}

export function toMountMessages(mounts: Mount[]): MountMessage[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: m.options }));
}
