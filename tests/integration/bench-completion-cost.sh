#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/completion-cost builds and runs end to end on a small file: exits 0,
# prints one row per cost (the raw run first, at 1.00x), every kind of cost
# (spin, read, touch, both XTS sector sizes, the polling and the sleeping pipe) with IOPS above zero and the
# thread's CPU per I/O; bad input is a clear error with exit 2, a missing
# file exit 1.  No speed is asserted.
. "$(dirname "$0")/../nbd/lib.sh"
for tool in cc pkg-config; do
	command -v "$tool" >/dev/null || { skip "bench/completion-cost: $tool not installed"; exit 0; }
done
pkg-config --exists liburing gnutls ||
	{ skip "bench/completion-cost: liburing or GnuTLS development files missing"; exit 0; }
img=$TESTTMP/cc.img
out=$TESTTMP/cc.out
head -c 16M /dev/urandom >"$img"
if ! dd if="$img" of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null; then
	skip "bench/completion-cost: $TESTTMP does not take O_DIRECT"
	exit 0
fi

TMPDIR=$TESTTMP timeout -k 10 120 "$SRCDIR/bench/completion-cost" "$img" 8 4096 0.2 2 \
	1 0r 0t 0x 0X p5/20 P5/20 >"$out" 2>"$TESTTMP/cc.err"
st=$?
check "bench/completion-cost exits 0 (exit $st)" test "$st" = 0
[ "$st" = 0 ] || sed 's/^/# /' "$TESTTMP/cc.err" | tail -n 20
check "header names the run (4096-byte reads, QD 8, 2 rounds)" \
	grep -q '^# 4096-byte random reads, QD 8, 2 round(s) of 0.2 s per cost, medians$' "$out"
check "the raw run first, at 1.00x" grep -Eq '^0 +[1-9][0-9]* +1\.00 +[0-9.]+$' "$out"
for c in 1 0r 0t 0x 0X p5/20 P5/20; do
	check "cost $c: IOPS above zero, a ratio and CPU per I/O" \
		grep -Eq "^$c +[1-9][0-9]* +[0-9]+\.[0-9]{2} +[0-9]+\.[0-9]{2}\$" "$out"
done
check "eight rows of figures" test "$(grep -c '^[0-9pP]' "$out")" = 8

for bad in 1z p1 p1/ P/3 -1; do
	"$SRCDIR/bench/completion-cost" "$img" 8 4096 0.2 1 "$bad" >/dev/null 2>"$TESTTMP/bad.err"
	st=$?
	check "cost '$bad' refused with exit 2 (exit $st)" test "$st" = 2
	check "cost '$bad': the error names it" grep -q "bad COST $bad" "$TESTTMP/bad.err"
done
"$SRCDIR/bench/completion-cost" "$img" 0 4096 0.2 1 >/dev/null 2>&1
st=$?
check "QD 0 refused with exit 2 (exit $st)" test "$st" = 2
"$SRCDIR/bench/completion-cost" "$TESTTMP/none.img" >/dev/null 2>"$TESTTMP/none.err"
st=$?
check "a missing file is exit 1 (exit $st)" test "$st" = 1
check "a missing file is named" grep -q "none.img: no such file" "$TESTTMP/none.err"
nbd_finish
