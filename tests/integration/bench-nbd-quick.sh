#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/nbd-quick runs end to end (one round of one second on a small file):
# every target gives a figure, the ratio lines are there, no server is left
# behind.  It asserts no speeds: a smoke run's figures mean nothing.
set -u
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
TESTTMP=${TESTTMP:-$(mktemp -d /tmp/aioloop-t.XXXXXX)}
for tool in fio nbdkit python3; do
	command -v $tool >/dev/null || { echo "skip - nbd-quick: $tool not installed"; exit 77; }
done
fio --enghelp 2>/dev/null | grep -qw nbd || { echo "skip - nbd-quick: fio has no nbd engine"; exit 77; }
img=$TESTTMP/nq.img out=$TESTTMP/nq.out
fio --name=fill --filename="$img" --size=64M --rw=write --bs=1M --output=/dev/null
TMPDIR=$TESTTMP timeout -k 10 120 "$SRCDIR/bench/nbd-quick" "$img" 1 1 >"$out" 2>"$TESTTMP/nq.err"
st=$?
res() { if [ "$1" = 0 ]; then echo "ok - $2"; else echo "not ok - $2"; cat "$out" "$TESTTMP/nq.err"; fi; }
res $st "nbd-quick: exit 0 (got $st)"
n=$(grep -cE '^rand(read|write) +(raw|aioloop|nbdkit-null) +median +[1-9][0-9]* IOPS' "$out")
res $([ "$n" = 6 ]; echo $?) "nbd-quick: a non-zero median for each of 6 runs (got $n)"
n=$(grep -cE '^rand(read|write) +aioloop / raw [0-9.]+x' "$out")
res $([ "$n" = 2 ]; echo $?) "nbd-quick: the two ratio lines (got $n)"
left=$(pgrep -f -- "$TESTTMP/aioloop-nbd-quick" | wc -l)
res $([ "$left" = 0 ]; echo $?) "nbd-quick: no server left running (found $left)"
