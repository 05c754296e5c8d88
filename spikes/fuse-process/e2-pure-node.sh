#!/bin/bash
# E2: pure-Node FUSE server (worker thread on /dev/fuse): answers while the
# main thread is blocked; /remote answers EIO after the deadline.
set -u
here=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/fuse-spike-e2.XXXX); chmod 700 "$T"; M=$T/mnt; mkdir $M
R1=; R2=
cleanup() { kill $R1 $R2 2>/dev/null; pkill -9 -P $$ -f pure-server.mjs 2>/dev/null; kill -9 $S 2>/dev/null; while grep -q " $M " /proc/self/mountinfo; do umount -l $M; done; }
trap cleanup EXIT
node $here/pure-server.mjs mount $M 1500 > $T/s.log 2>&1 & S=$!
sleep 1.5; cat $T/s.log
grep " $M " /proc/self/mountinfo | cut -d' ' -f5,9-
echo "ls: $(ls -la $M | tr '\n' ' ')"; echo "cached: $(cat $M/cached)"; echo "remote: $(timeout 5 head -c 30 $M/remote; echo rc=$?)"
echo "stat: $(stat -c '%n %s %A ino=%i' $M/cached $M/remote | tr '\n' ' ')"; echo "statfs: $(stat -f -c '%t bsize=%s' $M)"; echo "xattr: $(python3 -c 'import os,sys; print(os.listxattr(sys.argv[1]))' $M/cached 2>&1)"
$here/reader.sh $M/cached > $T/r-cached.log & R1=$!
# remote reader: drop the page cache each time so READ goes to the server
( while true; do s=$(date +%s%N); out=$(dd if=$M/remote bs=4096 count=1 iflag=direct 2>&1 >/dev/null | grep -v records | grep -v copied || true); e=$(( ($(date +%s%N)-s)/1000000 )); echo "$(date +%T.%N|cut -c1-12) ${e}ms ${out:-ok}"; sleep 0.2; done ) > $T/r-remote.log & R2=$!
sleep 1; echo "--- SIGUSR1: main thread blocked 8 s"; kill -USR1 $S; sleep 9
echo "cached reader:"; cat $T/r-cached.log; echo "remote reader (dd O_DIRECT, ms per read):"; cat $T/r-remote.log | awk '{print $2, $3, $4, $5, $6, $7, $8}' | uniq -c
sleep 1; cat $T/s.log | tail -5
