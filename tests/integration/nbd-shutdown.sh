#!/bin/bash
# SPDX-License-Identifier: MIT
# Graceful shutdown: SIGTERM with requests in flight.  The server answers
# new requests with ESHUTDOWN, finishes what it started, syncs and exits 0,
# and every write it acknowledged is in the file.  Also under a running fio.
. "$(dirname "$0")/../nbd/lib.sh"
for bin in $(nbd_binaries); do
	tag=$(basename "$(dirname "$bin")")
	img=$TESTTMP/s-$tag.img sock=$TESTTMP/s-$tag.sock log=$TESTTMP/s-$tag.log
	truncate -s 256M "$img"
	if [ -n "$NBD_PY" ]; then
		start_server "$bin" "$log" "$sock" -t 2 "$img" || { notok "$tag: server starts"; continue; }
		timeout 120 "$NBD_PY" "$SRCDIR/tests/nbd/acked_writes.py" "nbd+unix:///?socket=$sock" \
			"$SRV_PID" 4000 "$TESTTMP/acks"
		stop_server; st=$?
		check "$tag: SIGTERM with writes in flight: exit 0 (got $st)" test $st = 0
		check "$tag: every acknowledged write is in the file" \
			python3 "$SRCDIR/tests/nbd/verify_blocks.py" "$img" "$TESTTMP/acks"
		check "$tag: no sanitizer report" sanitizer_clean "$log"
	else
		skip "$tag: acknowledged writes across shutdown: python3-libnbd missing"
	fi
	if command -v fio >/dev/null; then
		start_server "$bin" "$log" "$sock" -t 2 "$img" || { notok "$tag: server starts"; continue; }
		fio --name=s --ioengine=nbd --uri="nbd+unix:///?socket=$sock" --numjobs=2 \
			--rw=randwrite --bs=16k --iodepth=32 --size=64M --runtime=20 --time_based \
			--output=/dev/null >/dev/null 2>&1 &
		fpid=$!; NBD_PIDS="$NBD_PIDS $fpid"
		sleep 1.5
		stop_server; st=$?
		check "$tag: SIGTERM during fio: exit 0 (got $st)" test $st = 0
		wait $fpid 2>/dev/null
		check "$tag: fio run: no sanitizer report" sanitizer_clean "$log"
	fi
	# A client that never reads its replies must not hold the shutdown up
	# beyond the grace period (10 s).
	start_server "$bin" "$log" "$sock" -t 1 "$img" || { notok "$tag: server starts"; continue; }
	python3 - "$sock" <<'PYEOF' &
import socket, struct, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.recv(18); s.sendall(struct.pack(">I", 3))
s.sendall(struct.pack(">QII", 0x49484156454F5054, 1, 0)); s.recv(10)
s.settimeout(5)
try:
    for i in range(1000):
        s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, i, 0, 1 << 20))
except OSError:
    pass
time.sleep(60)
PYEOF
	cpid=$!; NBD_PIDS="$NBD_PIDS $cpid"
	sleep 2
	t0=$(date +%s)
	stop_server; st=$?
	t1=$(date +%s)
	check "$tag: a client that reads nothing: exit 0 within the grace period (got $st after $((t1 - t0)) s)" \
		bash -c "[ $st = 0 ] && [ $((t1 - t0)) -le 14 ]"
	kill $cpid 2>/dev/null; wait $cpid 2>/dev/null
	check "$tag: stuck client: no sanitizer report" sanitizer_clean "$log"
	rm -f "$img"
done
nbd_finish
