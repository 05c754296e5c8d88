// The libfuse options a layer is mounted with, and why each is there.

export interface MountOptionSettings {
  fsname: string;
  subtype: string;
  /** Seconds the kernel may cache lookups (positive and negative) and attributes. */
  cacheTimeoutSeconds: number;
  debug: boolean;
}

// Labels end up inside a comma-separated -o string parsed by libfuse, where
// ',' splits and a backslash escapes, and in mountinfo, where whitespace is mangled;
// allow a conservative set that still fits a name like "lazysnap:sha256:...".
const LABEL = /^[A-Za-z0-9._:@+/-]{1,200}$/;

export function buildMountOptions(settings: MountOptionSettings): string[] {
  for (const [key, value] of [['fsname', settings.fsname], ['subtype', settings.subtype]] as const) {
    if (!LABEL.test(value)) throw new Error(`invalid FUSE ${key} ${JSON.stringify(value)}: use letters, digits and . _ : @ + / -`);
  }
  const timeout = settings.cacheTimeoutSeconds;
  if (!Number.isFinite(timeout) || timeout < 0) throw new Error(`invalid cache timeout ${timeout}`);
  const options = [
    // Read-only at the VFS level: the kernel answers EROFS to writes before
    // they reach us, and overlayfs sees an ro lower layer.
    'ro',
    // Containers run as other uids, and the mount is reachable by anyone who
    // can traverse its parent directory; overlayfs itself accesses lowerdirs
    // with the credentials of whoever mounted the overlay.
    'allow_other',
    // With allow_other, let the kernel enforce the layer's modes and owners;
    // without it every user could read every file, /etc/shadow included.
    'default_permissions',
    // Keep setuid bits effective, as on a layer unpacked to disk. A
    // single-layer view is a bind mount of this directory, and a bind mount
    // inherits nosuid. (nodev stays: device nodes in an image must not give
    // access to host devices through this mount.)
    'suid',
    // Hand our inode numbers to the kernel. libfuse's high-level API
    // otherwise invents one per path, so hardlinks would show different
    // st_ino and tools like tar and rsync would copy them twice.
    'use_ino',
    // The content is immutable: keep the page cache across opens, and cache
    // entries, negative lookups and attributes for a long time.
    'kernel_cache',
    `entry_timeout=${timeout}`,
    `negative_timeout=${timeout}`,
    `attr_timeout=${timeout}`,
    `fsname=${settings.fsname}`,
    `subtype=${settings.subtype}`,
  ];
  if (settings.debug) options.push('debug');
  return options;
}
