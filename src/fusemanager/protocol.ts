/**
 * The control protocol between the daemon and the FUSE manager: JSON, one
 * message a line, over a unix socket only root can reach. The daemon asks
 * (`{id, method, params}`), the manager answers (`{id, result}` or `{id,
 * error}`). Kept small and versioned: the manager outlives daemon upgrades,
 * so a newer daemon must be able to talk to an older manager, or say clearly
 * why it cannot.
 */
import type { Socket } from 'node:net';
import type { RemoteStateReport } from '../admin/index.js';
import type { RemoteLayerRef } from '../snapshotter/metadata-store.js';
import type { ImageToOpen, NotRemote } from '../snapshotter/remote/remote-mounter.js';
import type { RemoteRequest } from '../snapshotter/remote/remote-request.js';

/** Raised when a message changes shape; a daemon refuses a manager that speaks another. */
export const FUSE_MANAGER_PROTOCOL = 1;

/** A line longer than this is not a message of ours (the largest is a status listing). */
const MAX_LINE_BYTES = 64 * 1024 * 1024;

export interface ManagerHello {
  protocol: number;
  /** Changes with every start of a manager: a new value after a reconnect means the old manager died. */
  instance: string;
  pid: number;
  version: string;
  startedAt: string;
}

export interface ManagerInfo extends ManagerHello {
  mounts: number;
}

/** Credentials a CRI PullImage carried (`[cri_keychain]`), passed on to the process that talks to registries. */
export interface ForwardedAuth {
  image: string;
  auth?: Record<string, unknown> | undefined;
}

/** Every call: its params and its result. */
export interface ManagerMethods {
  hello: { params: { protocol: number }; result: ManagerHello };
  decide: { params: RemoteRequest; result: RemoteLayerRef | NotRemote };
  /** Added after protocol 1 shipped: an older manager answers it with an error, which the daemon ignores. */
  openImage: { params: ImageToOpen; result: null };
  /**
   * Answers once the manager's start-up warm-up has ended (done, given way
   * or failed). Added after protocol 1 shipped, like openImage.
   */
  warmedUp: { params: null; result: null };
  acquire: { params: { layer: RemoteLayerRef; holder: string }; result: { mountpoint: string } };
  release: { params: { layer: RemoteLayerRef; holder: string }; result: null };
  retainOnly: { params: { holders: string[] }; result: null };
  state: { params: null; result: RemoteStateReport };
  info: { params: null; result: ManagerInfo };
  metrics: { params: null; result: { text: string } };
  remember: { params: ForwardedAuth; result: null };
  forget: { params: { image: string }; result: null };
}

export type ManagerMethod = keyof ManagerMethods;

export interface ManagerRequest {
  id: number;
  method: string;
  params: unknown;
}

export interface ManagerReply {
  id: number;
  result?: unknown;
  error?: { name: string; message: string };
}

/** A call the manager answered with an error: its name and message, as the manager had them. */
export class FuseManagerCallError extends Error {
  constructor(
    readonly method: string,
    readonly remoteName: string,
    message: string,
  ) {
    super(message);
    this.name = 'FuseManagerCallError';
  }
}

/** The manager cannot be reached (not running, not answering, or gone mid-call). */
export class FuseManagerUnavailableError extends Error {
  constructor(
    readonly socket: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`FUSE manager at ${socket}: ${message}`, options);
    this.name = 'FuseManagerUnavailableError';
  }
}

/**
 * Splits a socket's bytes into JSON messages, one a line, and writes them
 * the same way. A line that is not JSON or is too long ends the connection:
 * the peer is not a lazysnap process of this protocol.
 */
export class LineChannel {
  private pending = '';

  constructor(
    readonly socket: Socket,
    onMessage: (message: unknown) => void,
    onBadInput: (reason: string) => void,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => {
      this.pending += data;
      let newline = this.pending.indexOf('\n');
      while (newline >= 0) {
        const line = this.pending.slice(0, newline);
        this.pending = this.pending.slice(newline + 1);
        if (line.length > 0) {
          let message: unknown;
          try {
            message = JSON.parse(line);
          } catch {
            onBadInput('a line that is not JSON');
            socket.destroy();
            return;
          }
          onMessage(message);
        }
        newline = this.pending.indexOf('\n');
      }
      if (this.pending.length > MAX_LINE_BYTES) {
        onBadInput(`a line longer than ${MAX_LINE_BYTES} bytes`);
        socket.destroy();
      }
    });
  }

  send(message: ManagerRequest | ManagerReply): void {
    if (!this.socket.writable) return;
    this.socket.write(`${JSON.stringify(message)}\n`);
  }
}

/** The socket the manager of ROOT listens on (and the directory that holds its lock and log). */
export function managerDirectory(root: string): string {
  return `${root.replace(/\/+$/, '')}/fuse-manager`;
}

export function managerSocketPath(root: string): string {
  return `${managerDirectory(root)}/manager.sock`;
}
