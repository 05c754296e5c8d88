// Result codes for FUSE handlers. fuse-native expects negative errno values;
// taking them from os.constants keeps them right for the platform instead of
// hard-coding Linux numbers.
import { constants } from 'node:os';

const e = constants.errno;

export const ENOENT = -e.ENOENT;
export const EIO = -e.EIO;
export const ENXIO = -e.ENXIO;
export const EACCES = -e.EACCES;
export const ENOTDIR = -e.ENOTDIR;
export const EISDIR = -e.EISDIR;
export const EINVAL = -e.EINVAL;
export const EROFS = -e.EROFS;
export const ERANGE = -e.ERANGE;
export const ELOOP = -e.ELOOP;
export const EBADF = -e.EBADF;
// ENODATA is what Linux's getxattr returns for an absent attribute (macOS
// would use ENOATTR); os.constants has it on Linux.
export const ENODATA = -(e.ENODATA ?? 61);
