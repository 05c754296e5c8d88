#!/bin/bash
# E1b: a reader whose request is in flight (server's event loop blocked) when the server dies;
# SIGKILL of the blocked reader itself; mounting over a dead FUSE mount.
set -u
here=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/fuse-spike-e1b.XXXX); chmod 700 "$T"; M=$T/mnt; mkdir $M $T/other; echo other > $T/other/f
cleanup() { kill -9 $A 2>/dev/null; while grep -q " $M " /proc/self/mountinfo; do umount -l $M; done; }
trap cleanup EXIT
node $here/native-server.mjs $M 1000 > $T/a.log 2>&1 & A=$!
sleep 2.5; cat $T/a.log
( s=$(date +%s.%N); out=$(cat $M/hello 2>&1); echo "in-flight reader: rc=$? after $(echo "$(date +%s.%N) - $s" | bc)s: $out" ) & R=$!
sleep 1; C=$(pgrep -f "^cat $M/hello"); echo "blocked cat $C: $(ps -o stat=,wchan:30= -p $C)"
kill -9 $C; sleep 1; echo "1 s after SIGKILL of the blocked cat: $(ps -o stat=,wchan:30= -p $C || echo gone)"
( s=$(date +%s.%N); out=$(stat -c %s $M/hello 2>&1); echo "in-flight stat: rc=$? after $(echo "$(date +%s.%N) - $s" | bc)s: $out" ) & R=$!
sleep 1; echo "--- SIGKILL A"; kill -9 $A; wait $R; sleep 0.2
echo "--- mount --bind over the dead FUSE mount"; mount --bind $T/other $M && echo "bind ok: $(cat $M/f 2>&1)"; echo "mounts stacked at M: $(grep -c " $M " /proc/self/mountinfo)"
