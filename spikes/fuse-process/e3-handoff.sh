#!/bin/bash
# E3: hand a live /dev/fuse connection to a successor process.
#   e3-handoff.sh inherit|clone
# Part 1: graceful handoff under a reader loop. Part 2: the predecessor hands
# off while it holds an unanswered request, and exits 200 ms later (a SIGKILL
# would be the same for the kernel: its last reference to its file goes).
set -u
here=$(cd "$(dirname "$0")" && pwd); how=$1
T=$(mktemp -d /tmp/fuse-spike-e3.XXXX); chmod 700 "$T"; M=$T/mnt; mkdir $M
R1=; R2=
pids() { grep -o '\(mount\|adopt\) [0-9]*\]' $T/s.log | grep -o '[0-9]*' | sort -u; }
newest() { grep -o 'adopt [0-9]*\]' $T/s.log | grep -o '[0-9]*' | tail -1; }
cleanup() { kill $R1 $R2 2>/dev/null; for p in $(pids); do kill -9 $p 2>/dev/null; done; while grep -q " $M " /proc/self/mountinfo; do umount -l $M; done; }
trap cleanup EXIT
export HANDOFF=$how
node $here/pure-server.mjs mount $M 1500 > $T/s.log 2>&1 & S=$!
sleep 1.5
$here/reader.sh $M/cached > $T/r.log & R1=$!
sleep 1; echo "--- part 1: SIGUSR2 to $S (hand off, then exit)"; kill -USR2 $S; sleep 2
S2=$(newest); echo "old alive: $(kill -0 $S 2>/dev/null && echo yes || echo no); successor $S2 alive: $(kill -0 $S2 && echo yes)"
echo "cat via successor: $(cat $M/remote | head -c 20)"; sleep 1
echo "reader through the handoff:"; cat $T/r.log; echo "/dev/fuse fds: $(ls -l /proc/$S2/fd | grep -c /dev/fuse) in successor"
echo "--- part 2: $S2 holds a request in flight, hands off, exits"
kill -HUP $S2; sleep 0.3
( s=$(date +%s%N); out=$(dd if=$M/remote bs=4096 count=1 iflag=direct 2>&1 >/dev/null | grep -v records | grep -v copied); echo "in-flight reader: finished after $(( ($(date +%s%N)-s)/1000000 )) ms: ${out:-ok}" ) & R2=$!
sleep 0.5; kill -USR2 $S2; sleep 1; S3=$(newest); echo "third server $S3; $S2 alive: $(kill -0 $S2 2>/dev/null && echo yes || echo no)"; sleep 3
D=$(pgrep -f "^dd if=$M/remote"); [ -n "$D" ] && echo "in-flight dd $D after 3 s: $(ps -o stat=,wchan:25= -p $D)"
echo "new reads via $S3: $(dd if=$M/remote bs=4096 count=1 iflag=direct 2>/dev/null | head -c 20)"; echo "reader: $(tail -2 $T/r.log | tr '\n' ' ')"
if [ -n "$D" ]; then
  # fusectl: one directory per connection, named by the mount's device minor
  mkdir $T/ctl; mount -t fusectl fusectl $T/ctl; C=$(grep " $M " /proc/self/mountinfo | cut -d' ' -f3 | cut -d: -f2)
  echo "connection $C: waiting=$(cat $T/ctl/$C/waiting); aborting it to free the reader"; echo 1 > $T/ctl/$C/abort; umount $T/ctl; sleep 0.5
  echo "after abort, new read: $(cat $M/cached 2>&1)"
fi
wait $R2; grep -v 'ops so far' $T/s.log | tail -8
