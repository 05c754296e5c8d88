# clone-fd.py CMD...: fd 3 is a /dev/fuse file of a live connection. Open a
# new /dev/fuse file, bind it to the same connection (FUSE_DEV_IOC_CLONE),
# put it on fd 3 and exec CMD. The successor then has its own file, so the
# predecessor's death ends only the requests it had read (ECONNABORTED)
# instead of leaving them unanswered forever.
import fcntl, os, struct, sys
FUSE_DEV_IOC_CLONE = 0x8004e500  # _IOR(229, 0, uint32_t)
new = os.open('/dev/fuse', os.O_RDWR | os.O_CLOEXEC)
fcntl.ioctl(new, FUSE_DEV_IOC_CLONE, struct.pack('I', 3))
os.dup2(new, 3)  # dup2 clears CLOEXEC on 3 and drops the inherited file
os.close(new)
os.execv(sys.argv[1], sys.argv[1:])
