/**
 * Loads the containerd API definitions lazysnap speaks from proto/. Field
 * names are camelCase, int64 become JS numbers, enums are numbers.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

/** proto/ at the package root; this file runs from dist/src/containerd/. */
export const PROTO_DIR = fileURLToPath(new URL('../../../proto/', import.meta.url));

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: Number,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

export function loadProtos(files: string[]): grpc.GrpcObject {
  const definition = protoLoader.loadSync(files, LOADER_OPTIONS);
  return grpc.loadPackageDefinition(definition);
}

/** Walks a dotted name (e.g. containerd.services.snapshots.v1.Snapshots) in a loaded package. */
export function lookupService(root: grpc.GrpcObject, name: string): grpc.ServiceClientConstructor {
  let node: unknown = root;
  for (const part of name.split('.')) {
    node = (node as Record<string, unknown> | undefined)?.[part];
  }
  if (typeof node !== 'function' || !('service' in node)) throw new Error(`service ${name} is not in the loaded protos`);
  return node as grpc.ServiceClientConstructor;
}

export const SNAPSHOTS_SERVICE = 'containerd.services.snapshots.v1.Snapshots';
export const SNAPSHOTS_PROTO = 'containerd/services/snapshots/v1/snapshots.proto';

export function snapshotsServiceDefinition(): grpc.ServiceDefinition {
  return lookupService(loadProtos([SNAPSHOTS_PROTO]), SNAPSHOTS_SERVICE).service;
}

/** A Snapshots client (for tests, the benchmark and the pull client). */
export function snapshotsClientConstructor(): grpc.ServiceClientConstructor {
  return lookupService(loadProtos([SNAPSHOTS_PROTO]), SNAPSHOTS_SERVICE);
}
