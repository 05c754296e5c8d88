/**
 * Something (most often a stale mount of a process that died) is already
 * mounted where a layer was to be mounted. The caller decides whether it
 * may take that mount down: mountLayer never does.
 */
export class MountpointBusyError extends Error {
  constructor(readonly mountpoint: string) {
    super(`cannot mount layer on ${mountpoint}: something is already mounted there (a stale mount? see cleanupStaleMounts)`);
    this.name = 'MountpointBusyError';
  }
}
