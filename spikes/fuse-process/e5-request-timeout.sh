#!/bin/bash
# E5: the kernel's own FUSE request timeout (Linux 6.14+), asked for per
# connection in INIT (flags2 FUSE_REQUEST_TIMEOUT, init_out.request_timeout).
# What happens to a request the server never answers?
set -u
here=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/fuse-spike-e5.XXXX); chmod 700 "$T"; M=$T/mnt; mkdir $M
cleanup() { kill -9 $S 2>/dev/null; while grep -q " $M " /proc/self/mountinfo; do umount -l $M; done; }
trap cleanup EXIT
node $here/pure-server.mjs mount $M 1500 5 > $T/s.log 2>&1 & S=$!
sleep 1.5; grep INIT $T/s.log; kill -HUP $S; sleep 0.3
s=$(date +%s%N); out=$(dd if=$M/remote bs=4096 count=1 iflag=direct 2>&1 >/dev/null | grep -v records | grep -v copied); echo "unanswered read ended after $(( ($(date +%s%N)-s)/1000000 )) ms: ${out:-ok}"
echo "then: $(cat $M/cached 2>&1); server alive: $(kill -0 $S && echo yes)"; tail -3 $T/s.log
