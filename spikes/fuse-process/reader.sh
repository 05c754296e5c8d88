#!/bin/bash
# Reads FILE every 50 ms; prints one line per change of outcome (ok / error text).
f=$1; last=""; n=0
while true; do
  out=$(cat "$f" 2>&1 >/dev/null && echo ok || true)
  [ -z "$out" ] && out=ok
  n=$((n+1))
  if [ "$out" != "$last" ]; then echo "$(date +%T.%N | cut -c1-12) read#$n: $out"; last=$out; fi
  sleep 0.05
done
