#!/bin/bash
# SPDX-License-Identifier: MIT
# Ring polling (--poll): a worker that polls for completions before it
# sleeps must still sleep when there is nothing to do (an idle server, and
# an idle open connection, cost next to no CPU), serve correctly with
# polling off, short and long, and refuse a bad value.
. "$(dirname "$0")/../nbd/lib.sh"
command -v nbdinfo >/dev/null || { skip "poll tests: nbdinfo missing"; exit 0; }
img=$TESTTMP/p.img
truncate -s 64M "$img"

# cpu_ticks PID: user+system clock ticks of the process so far
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

"$AIOLOOP" serve --poll=-5 -U "$TESTTMP/x.sock" "$img" 2>"$TESTTMP/bad.log"; st=$?
check "--poll=-5: exit 2 with a message (got $st)" \
	bash -c "[ $st = 2 ] && grep -q 'poll' '$TESTTMP/bad.log'"
check "--help documents --poll" bash -c "'$AIOLOOP' serve --help | grep -q -- '--poll USEC'"

for bin in $(nbd_binaries); do
	tag=$(basename "$(dirname "$bin")")
	sock=$TESTTMP/p-$tag.sock log=$TESTTMP/p-$tag.log
	# Default polling (500 us), one worker.  Some requests, then idle.
	start_server "$bin" "$log" "$sock" -t 1 "$img" || { notok "$tag: server starts"; continue; }
	uri="nbd+unix:///?socket=$sock"
	for _ in 1 2 3; do nbdinfo --map "$uri" >/dev/null 2>&1; done
	sleep 0.3
	t0=$(cpu_ticks "$SRV_PID"); sleep 2; t1=$(cpu_ticks "$SRV_PID")
	# At most 5% of one CPU over the 2 s (a spinning worker would use 100%).
	check "$tag: idle server sleeps (used $((t1 - t0)) of $((2 * hz)) ticks)" \
		test $((t1 - t0)) -le $((hz / 10))
	if [ -n "$NBD_PY" ]; then
		"$NBD_PY" - "$uri" "$TESTTMP/idle-$tag" <<'PYEOF' &
import nbd, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(b"x" * 4096, 0)
open(sys.argv[2], "w").close()
time.sleep(3)
assert h.pread(4096, 0) == b"x" * 4096
h.shutdown()
PYEOF
		cpid=$!
		for _ in $(seq 50); do [ -e "$TESTTMP/idle-$tag" ] && break; sleep 0.1; done
		sleep 0.3
		t0=$(cpu_ticks "$SRV_PID"); sleep 2; t1=$(cpu_ticks "$SRV_PID")
		check "$tag: idle open connection: worker sleeps (used $((t1 - t0)) ticks)" \
			test $((t1 - t0)) -le $((hz / 10))
		check "$tag: the idle connection is still served" wait $cpid
	else
		skip "$tag: idle open connection: python3-libnbd missing"
	fi
	stop_server; st=$?
	check "$tag: default polling: exit 0 (got $st)" test $st = 0
	check "$tag: default polling: no sanitizer report" sanitizer_clean "$log"

	# Correct data with polling off and with a long window.
	if command -v fio >/dev/null; then
		for p in 0 20000; do
			start_server "$bin" "$log" "$sock" -t 2 --poll=$p "$img" ||
				{ notok "$tag: --poll=$p: server starts"; continue; }
			check "$tag: --poll=$p: fio verify=crc32c, 2 connections" \
				timeout 120 fio --name=p --ioengine=nbd --uri="$uri" --numjobs=2 \
				--rw=randwrite --bs=4k --iodepth=16 --size=8M --offset_increment=16M \
				--verify=crc32c --verify_fatal=1 --verify_state_save=0 \
				--output=/dev/null
			stop_server; st=$?
			check "$tag: --poll=$p: exit 0 (got $st)" test $st = 0
			check "$tag: --poll=$p: no sanitizer report" sanitizer_clean "$log"
		done
	else
		skip "$tag: --poll data tests: fio missing"
	fi
done
nbd_finish
