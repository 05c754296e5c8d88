export class NotRootError extends Error {
  constructor(command: string, euid: number) {
    super(`lazysnap ${command} must run as root (it mounts overlay and FUSE filesystems and keeps image content private to root); running as uid ${euid}`);
    this.name = 'NotRootError';
  }
}
