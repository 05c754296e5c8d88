/** One connection from the daemon to the FUSE manager: calls matched to their answers by id. */
import { connect, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { FuseManagerCallError, FuseManagerUnavailableError, LineChannel, type ManagerMethod, type ManagerMethods, type ManagerReply } from './protocol.js';

interface PendingCall {
  method: string;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer?: NodeJS.Timeout;
}

export class ManagerConnection {
  private nextId = 1;
  private readonly pending = new Map<number, PendingCall>();
  private readonly channel: LineChannel;
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    readonly socketPath: string,
    logger: Logger,
    onClose: (connection: ManagerConnection) => void,
  ) {
    this.channel = new LineChannel(
      socket,
      (message) => this.settle(message as ManagerReply),
      (reason) => logger.error({ socket: socketPath, reason }, 'the FUSE manager sent bad input; connection closed'),
    );
    socket.on('error', (err) => logger.debug({ err, socket: socketPath }, 'FUSE manager connection error'));
    socket.on('close', () => {
      this.closed = true;
      for (const [id, call] of this.pending) {
        this.pending.delete(id);
        clearTimeout(call.timer);
        call.reject(new FuseManagerUnavailableError(socketPath, `connection lost during ${call.method}`));
      }
      onClose(this);
    });
  }

  /** Connects, or rejects with the socket's error (ENOENT, ECONNREFUSED: no manager there). */
  static open(socketPath: string, logger: Logger, onClose: (connection: ManagerConnection) => void): Promise<ManagerConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(socketPath);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new ManagerConnection(socket, socketPath, logger, onClose));
      });
    });
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Rejects with FuseManagerCallError (the manager failed it) or FuseManagerUnavailableError (no answer). */
  call<M extends ManagerMethod>(method: M, params: ManagerMethods[M]['params'], timeoutMs?: number): Promise<ManagerMethods[M]['result']> {
    if (this.closed) return Promise.reject(new FuseManagerUnavailableError(this.socketPath, `connection closed before ${method}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const call: PendingCall = { method, resolve: resolve as (value: unknown) => void, reject };
      if (timeoutMs !== undefined) {
        call.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new FuseManagerUnavailableError(this.socketPath, `no answer to ${method} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.pending.set(id, call);
      this.channel.send({ id, method, params });
    });
  }

  close(): void {
    this.socket.end();
  }

  private settle(reply: ManagerReply): void {
    const call = typeof reply?.id === 'number' ? this.pending.get(reply.id) : undefined;
    if (call === undefined) return; // timed out already
    this.pending.delete(reply.id);
    clearTimeout(call.timer);
    if (reply.error !== undefined) call.reject(new FuseManagerCallError(call.method, reply.error.name, reply.error.message));
    else call.resolve(reply.result);
  }
}
