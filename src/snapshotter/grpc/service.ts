/**
 * containerd.services.snapshots.v1.Snapshots over a Snapshotter. Each
 * handler decodes, calls the snapshotter, and reports errors through the
 * one mapping in status.ts; latency is recorded per method and code.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { SnapshotterMetrics } from '../metrics.js';
import type { Snapshotter } from '../snapshotter.js';
import { InvalidArgumentError } from '../errors.js';
import { statusName, toServiceError } from './status.js';
import {
  toInfoMessage,
  toMountMessages,
  type CommitRequest,
  type CreateRequest,
  type KeyRequest,
  type ListRequest,
  type UpdateRequest,
} from './messages.js';

/** containerd's snapshot service streams List results in batches of this size. */
const LIST_BATCH_SIZE = 100;

type Unary<Req> = grpc.handleUnaryCall<Req, unknown>;

export function createSnapshotsService(snapshotter: Snapshotter, logger: Logger, metrics: SnapshotterMetrics): grpc.UntypedServiceImplementation {
  const unary = <Req>(method: string, run: (request: Req) => Promise<unknown>): Unary<Req> => {
    return (call, callback) => {
      const start = process.hrtime.bigint();
      run(call.request).then(
        (response) => {
          const seconds = elapsed(start);
          metrics.observeCall(method, 'OK', seconds);
          // Per-call timings at debug level: where a pull's milliseconds go. Built only when asked for: Stat and Mounts are hot.
          if (logger.isLevelEnabled('debug')) logger.debug({ method, key: keyOf(call.request), ms: Math.round(seconds * 1e4) / 10 }, 'snapshots call');
          callback(null, response);
        },
        (err: unknown) => {
          const serviceError = toServiceError(err);
          const code = statusName(serviceError.code);
          const seconds = elapsed(start);
          metrics.observeCall(method, code, seconds);
          const level = code === 'INTERNAL' ? 'error' : 'debug';
          logger[level]({ method, code, ms: Math.round(seconds * 1e4) / 10, err, request: call.request }, 'snapshots call failed');
          callback(serviceError as grpc.ServiceError);
        },
      );
    };
  };

  const list: grpc.handleServerStreamingCall<ListRequest, unknown> = (call) => {
    const start = process.hrtime.bigint();
    snapshotter.list(call.request.filters ?? []).then(
      (infos) => {
        for (let i = 0; i < infos.length; i += LIST_BATCH_SIZE) {
          call.write({ info: infos.slice(i, i + LIST_BATCH_SIZE).map(toInfoMessage) });
        }
        metrics.observeCall('List', 'OK', elapsed(start));
        call.end();
      },
      (err: unknown) => {
        const serviceError = toServiceError(err);
        metrics.observeCall('List', statusName(serviceError.code), elapsed(start));
        logger.debug({ method: 'List', err, request: call.request }, 'snapshots call failed');
        call.emit('error', serviceError);
      },
    );
  };

  return {
    Prepare: unary<CreateRequest>('Prepare', async (r) => ({ mounts: toMountMessages(await snapshotter.prepare(r.key, r.parent, r.labels ?? {})) })),
    View: unary<CreateRequest>('View', async (r) => ({ mounts: toMountMessages(await snapshotter.view(r.key, r.parent, r.labels ?? {})) })),
    Mounts: unary<KeyRequest>('Mounts', async (r) => ({ mounts: toMountMessages(await snapshotter.mounts(r.key)) })),
    Commit: unary<CommitRequest>('Commit', async (r) => {
      await snapshotter.commit(r.name, r.key, r.labels ?? {});
      return {};
    }),
    Remove: unary<KeyRequest>('Remove', async (r) => {
      await snapshotter.remove(r.key);
      return {};
    }),
    Stat: unary<KeyRequest>('Stat', async (r) => ({ info: toInfoMessage(await snapshotter.stat(r.key)) })),
    Update: unary<UpdateRequest>('Update', async (r) => {
      if (!r.info) throw new InvalidArgumentError('update: info is required');
      const info = await snapshotter.update(r.info.name, r.info.labels ?? {}, r.updateMask?.paths ?? []);
      return { info: toInfoMessage(info) };
    }),
    List: list,
    Usage: unary<KeyRequest>('Usage', async (r) => snapshotter.usage(r.key)),
    Cleanup: unary<unknown>('Cleanup', async () => {
      await snapshotter.cleanup();
      return {};
    }),
  };
}

function elapsed(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function keyOf(request: unknown): string | undefined {
  const key = (request as { key?: unknown } | null)?.key;
  return typeof key === 'string' ? key : undefined;
}
