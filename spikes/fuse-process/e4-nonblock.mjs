// E4: what does a read of a non-blocking /dev/fuse fd with no request queued give Node?
import { openSync, readSync, constants } from 'node:fs';
const fd = openSync('/dev/fuse', constants.O_RDWR | constants.O_NONBLOCK);
try { readSync(fd, Buffer.alloc(200000)); } catch (e) { console.log('unmounted fd:', e.code); }
