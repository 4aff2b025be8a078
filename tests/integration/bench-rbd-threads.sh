#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/rbd-threads runs end to end on its own throwaway cluster: exits 0,
# prints both jobs with their IOPS, CPU per I/O by thread name (librbd's
# threads in both, the server's own in the NBD job) and the daemons' share,
# and leaves no daemon or server behind.  No speed is asserted.
. "$(dirname "$0")/../nbd/lib.sh"
. "$SRCDIR/tests/ceph/lib.sh"
rbd_requires "bench/rbd-threads"
command -v fio >/dev/null || { skip "bench/rbd-threads: fio not installed"; exit 0; }
out=$TESTTMP/rbd-threads.out

TMPDIR=$TESTTMP AIOLOOP=$AIOLOOP timeout -k 10 600 "$SRCDIR/bench/rbd-threads" 1 3 \
	>"$out" 2>"$TESTTMP/rbd-threads.err"
st=$?
check "bench/rbd-threads 1 3 exits 0 (exit $st)" test "$st" = 0
[ "$st" = 0 ] || sed 's/^/# /' "$TESTTMP/rbd-threads.err" | tail -n 20
for job in rbd-fio nbd; do
	check "$job: IOPS reported and above zero" \
		grep -Eq "^$job: [1-9][0-9,]* IOPS" "$out"
	check "$job: librbd's threads, the OSD and the whole machine accounted for" bash -c "
		sed -n '/^$job:/,/^\$/p' '$out' > '$TESTTMP/job.txt'
		grep -Eq '^  io_context_pool +[0-9.]+ +[0-9.]+\$' '$TESTTMP/job.txt' &&
		grep -Eq '^  ceph-osd \(process\) +[0-9.]+\$' '$TESTTMP/job.txt' &&
		grep -Eq '^  with the daemons +[0-9.]+ += [0-9.]+ of [0-9]+ CPUs busy\$' '$TESTTMP/job.txt'"
done
check "nbd: the server's own threads are counted" \
	bash -c "sed -n '/^nbd:/,\$p' '$out' | grep -Eq '^  aioloop +[0-9.]+ +[0-9.]+\$'"
check "no Ceph daemon or server left running" \
	bash -c "! pgrep -f -- '$TESTTMP/[a]ioloop-rbd-threads' >/dev/null"
nbd_finish
