#!/bin/bash
# E1: does A keep serving when B (who asked for the mount) is SIGKILLed?
# What do readers see when A dies? Can a new server mount on the same path?
set -u
here=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/fuse-spike-e1.XXXX); chmod 700 "$T"; M=$T/mnt; mkdir $M
cleanup() { kill $RD 2>/dev/null; for p in $(cat $T/pids 2>/dev/null); do kill -9 $p 2>/dev/null; done; while grep -q " $M " /proc/self/mountinfo; do umount -l $M; done; }
trap cleanup EXIT
node $here/launcher.mjs $M > $T/b.log 2>&1 & B=$!
for i in $(seq 50); do grep -q 'A says' $T/b.log && break; sleep 0.1; done
cat $T/b.log; A=$(sed -n 's/.*A pid=\([0-9]*\).*/\1/p' $T/b.log); echo "$A $B" > $T/pids
$here/reader.sh $M/hello > $T/reader.log 2>&1 & RD=$!
sleep 1; echo "--- SIGKILL B ($B)"; kill -9 $B; sleep 2
echo "A alive: $(kill -0 $A 2>/dev/null && echo yes || echo no)"; cat $T/reader.log
# a reader holding the file open across A's death
exec 7<$M/hello
echo "--- SIGKILL A ($A)"; kill -9 $A; sleep 1; cat $T/reader.log
echo "read on fd opened before death: $(cat <&7 2>&1 | head -c 100)"; exec 7<&-
echo "stat mountpoint: $(stat -c %F $M 2>&1)"; echo "ls: $(ls $M 2>&1)"
grep " $M " /proc/self/mountinfo | cut -d' ' -f5,9,10
echo "--- mount a new server on the same path without umount"
node $here/native-server.mjs $M > $T/a2.log 2>&1 & A2=$!; echo "$A2" >> $T/pids; sleep 3; cat $T/a2.log
echo "mounts at $M: $(grep -c " $M " /proc/self/mountinfo)"; sleep 1; cat $T/reader.log | tail -3
echo "cat: $(cat $M/hello 2>&1)"
