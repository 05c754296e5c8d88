/**
 * Readiness for systemd's `Type=notify`: containerd is ordered after the
 * unit, and with notify that ordering means "after the socket answers"
 * rather than "after the process was forked".
 *
 * Node has no unix datagram sockets, so the message is sent by
 * `systemd-notify`. It runs as a child, so it names the daemon's pid
 * (`--pid`): as root it may put that pid in the message's credentials, and
 * systemd then attributes the message to the unit's main process even after
 * the short-lived child is gone. `--no-block` skips the barrier, which only
 * waits for systemd to read the message and would hold us up to 5 s on a
 * listener that keeps the barrier's descriptor.
 */
import { execFile } from 'node:child_process';

export class SystemdNotifyError extends Error {
  constructor(
    readonly socket: string,
    readonly state: string,
    cause: Error & { stderr?: string },
  ) {
    super(`systemd-notify ${state} to NOTIFY_SOCKET ${socket} failed: ${(cause.stderr ?? '').trim() || cause.message}`, { cause });
    this.name = 'SystemdNotifyError';
  }
}

export interface ServiceManagerNotifier {
  /** The socket answers: containerd (ordered After= us) may start. */
  ready(status: string): Promise<void>;
  /** Shutdown has begun. */
  stopping(): Promise<void>;
}

/** How long systemd-notify may take; it only sends one datagram. */
const NOTIFY_TIMEOUT_MS = 5_000;

/** A notifier when the daemon runs under a service manager (NOTIFY_SOCKET set), else undefined. */
export function notifierFromEnvironment(env: NodeJS.ProcessEnv, pid: number, command = 'systemd-notify'): ServiceManagerNotifier | undefined {
  const socket = env['NOTIFY_SOCKET'];
  if (!socket) return undefined;
  const send = (state: string, extra: string[] = []) =>
    new Promise<void>((resolve, reject) => {
      execFile(command, ['--no-block', `--pid=${pid}`, ...extra, state], { timeout: NOTIFY_TIMEOUT_MS, env }, (err) => {
        if (err) reject(new SystemdNotifyError(socket, state, err));
        else resolve();
      });
    });
  return {
    ready: (status) => send('READY=1', [`--status=${status}`]),
    stopping: () => send('STOPPING=1'),
  };
}
