// The CRI ImageService (runtime.v1) served on lazysnap's socket for kubelet
// (`--image-service-endpoint`), forwarding every call to containerd's CRI.
// Calls travel as raw bytes: containerd gets exactly what kubelet sent and
// kubelet exactly what containerd answered (fields this project's proto
// subset does not know included), with containerd's status codes. The only
// thing lazysnap does on the way is read PullImage's image and credentials
// into the keychain, so the snapshotter can fetch that image's layers.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { loadProtos, lookupService } from '../containerd/api.js';
import type { AuthConfig } from './auth-config.js';
import type { RememberOutcome } from './keychain.js';

export const IMAGE_SERVICE = 'runtime.v1.ImageService';
const CRI_PROTO = 'cri/runtime/v1/api.proto';

/** Every method of runtime.v1.ImageService; all are unary. */
export const IMAGE_SERVICE_METHODS = ['ListImages', 'ImageStatus', 'PullImage', 'RemoveImage', 'ImageFsInfo'] as const;
export type ImageServiceMethod = (typeof IMAGE_SERVICE_METHODS)[number];

/** ListImages answers grow with the node's images; containerd's own limit is 16 MiB. */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

const passBytes = (message: Buffer): Buffer => message;

/** The service as raw bytes in both directions (what a transparent proxy needs). */
export function imageServiceDefinition(): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  for (const method of IMAGE_SERVICE_METHODS) {
    definition[method] = {
      path: `/${IMAGE_SERVICE}/${method}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: passBytes,
      requestDeserialize: passBytes,
      responseSerialize: passBytes,
      responseDeserialize: passBytes,
    };
  }
  return definition;
}

interface ImageRequest {
  image?: { image?: string } | null;
  auth?: AuthConfig | null;
}

type Decoder = (message: Buffer) => ImageRequest;

/** Decoders of the two requests lazysnap reads (PullImage, RemoveImage) from the project's CRI proto. */
function requestDecoders(): { pull: Decoder; remove: Decoder } {
  const service = lookupService(loadProtos([CRI_PROTO]), IMAGE_SERVICE).service;
  return {
    pull: service.PullImage!.requestDeserialize as Decoder,
    remove: service.RemoveImage!.requestDeserialize as Decoder,
  };
}

/**
 * Metadata the transport sets itself; forwarding kubelet's copy would send
 * two of them. What is left is what kubelet meant for the image service.
 */
const TRANSPORT_METADATA = new Set(['user-agent', 'content-type', 'te', 'host', 'accept-encoding', 'grpc-accept-encoding', 'grpc-encoding', 'grpc-timeout']);

function forwardedMetadata(incoming: grpc.Metadata): grpc.Metadata {
  const out = incoming.clone();
  for (const key of Object.keys(out.getMap())) {
    if (TRANSPORT_METADATA.has(key) || key.startsWith(':')) out.remove(key);
  }
  return out;
}

/** Where the proxy puts the credentials it sees: a CriKeychain, or one that also passes them on to the FUSE manager. */
export interface CredentialsKeeper {
  remember(image: string, auth: AuthConfig | undefined): RememberOutcome;
  forget(image: string): boolean;
}

export interface ImageServiceProxyOptions {
  /** containerd's socket (config `[cri_keychain] image_service_path`). */
  upstreamSocket: string;
  keychain: CredentialsKeeper;
  logger: Logger;
}

export class ImageServiceProxy {
  private readonly upstream: grpc.Client;
  private readonly decode = requestDecoders();
  private readonly keychain: CredentialsKeeper;
  private readonly logger: Logger;
  private readonly upstreamSocket: string;

  constructor(options: ImageServiceProxyOptions) {
    this.upstreamSocket = options.upstreamSocket;
    this.keychain = options.keychain;
    this.logger = options.logger;
    // grpc-js connects on the first call and reconnects by itself, so a
    // containerd that starts after lazysnap, or restarts, needs nothing here.
    this.upstream = new grpc.Client(`unix://${options.upstreamSocket}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    });
  }

  implementation(): grpc.UntypedServiceImplementation {
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const method of IMAGE_SERVICE_METHODS) {
      handlers[method] = (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => this.forward(method, call, callback);
    }
    return handlers;
  }

  close(): void {
    this.upstream.close();
  }

  private forward(method: ImageServiceMethod, call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void {
    const image = this.observe(method, call.request);
    const upstreamCall = this.upstream.makeUnaryRequest<Buffer, Buffer>(
      `/${IMAGE_SERVICE}/${method}`,
      passBytes,
      passBytes,
      call.request,
      forwardedMetadata(call.metadata),
      { deadline: call.getDeadline() },
      (err, response) => {
        if (err) {
          // Pull failures are what an operator looks for ("why is my pod in ImagePullBackOff");
          // the rest (NotFound on RemoveImage, …) are routine.
          const level = method === 'PullImage' ? 'warn' : 'debug';
          this.logger[level]({ method, image, code: grpc.status[err.code] ?? err.code, details: err.details, upstream: this.upstreamSocket }, 'CRI image service call failed in containerd');
          callback({ code: err.code, details: err.details, metadata: err.metadata });
          return;
        }
        if (method === 'PullImage') this.logger.debug({ image }, 'CRI PullImage done');
        callback(null, response);
      },
    );
    // Kubelet gave up (deadline, restart): containerd stops too.
    call.on('cancelled', () => upstreamCall.cancel());
  }

  /**
   * Takes what the keychain needs from a call; returns the image it names,
   * for logs. Never fails the call: containerd judges the request, not us.
   */
  private observe(method: ImageServiceMethod, request: Buffer): string | undefined {
    if (method !== 'PullImage' && method !== 'RemoveImage') return undefined;
    let decoded: ImageRequest;
    try {
      decoded = (method === 'PullImage' ? this.decode.pull : this.decode.remove)(request);
    } catch (err) {
      this.logger.warn({ method, err: { message: (err as Error).message } }, 'CRI request could not be decoded; forwarded as it is, no credentials kept');
      return undefined;
    }
    const image = decoded.image?.image ?? '';
    if (method === 'RemoveImage') {
      if (this.keychain.forget(image)) this.logger.info({ image }, 'CRI RemoveImage: credentials of the image forgotten');
      return image;
    }
    try {
      const outcome = this.keychain.remember(image, decoded.auth ?? undefined);
      const log = outcome === 'malformed' || outcome === 'other-registry' ? this.logger.warn.bind(this.logger) : this.logger.info.bind(this.logger);
      log({ image, credentials: outcome }, CREDENTIAL_OUTCOME_MESSAGES[outcome]);
    } catch (err) {
      this.logger.warn({ image, err: { message: (err as Error).message } }, 'CRI PullImage names no valid image reference; no credentials kept');
    }
    return image;
  }
}

const CREDENTIAL_OUTCOME_MESSAGES = {
  kept: 'CRI PullImage: credentials kept in memory for the layers of this image',
  none: 'CRI PullImage without credentials: layers of this image use the node\'s registry credentials, if any',
  'other-registry': 'CRI PullImage credentials are for another registry (server_address); not used for this image',
  malformed: 'CRI PullImage credentials ignored: auth is not base64 of user:password',
} as const;
