#!/bin/bash
# Cost of enabling syscall tracepoints with no program attached: 200,000 1-byte writes
# with perf stat holding syscalls:sys_enter_openat / sys_exit_openat / both enabled
# system-wide, against none. 25 rounds; the order of the four rotates each round.
# (kill -TERM: a background job of a script ignores SIGINT.)
# Run from the workspace root, as root: bash docs/tp-floor.sh > tp-floor.out
W=${VTRAIL_WORKLOAD:-${CARGO_TARGET_DIR:-target}/release/vtrail-workload}
OUT=/tmp/vtrail-tp-floor.out
conds=(none enter exit both)
for r in $(seq 0 24); do
  for k in 0 1 2 3; do
    c=${conds[$(( (r + k) % 4 ))]}
    case $c in
      none) ev="";;
      enter) ev="-e syscalls:sys_enter_openat";;
      exit) ev="-e syscalls:sys_exit_openat";;
      both) ev="-e syscalls:sys_enter_openat -e syscalls:sys_exit_openat";;
    esac
    if [ -n "$ev" ]; then perf stat $ev -a -o /dev/null & P=$!; sleep 0.5; fi
    t=$($W writes 200000 $OUT)
    if [ -n "$ev" ]; then kill -TERM $P; wait $P 2>/dev/null; fi
    echo "$c $t"
  done
done
rm -f $OUT
