#!/bin/bash
# SPDX-License-Identifier: MIT
# Raw-socket protocol tests (tests/nbd/nbd_raw.py): malformed handshakes
# and requests, extended headers, wire form of replies, then seeded random
# sessions (tests/nbd/nbd_fuzz.py); against the normal
# and the sanitizer binary.  The server must survive all of it, exit 0 on
# SIGTERM and, under the sanitizers, report nothing.
. "$(dirname "$0")/../nbd/lib.sh"
command -v python3 >/dev/null || { skip "raw protocol tests: no python3"; exit 0; }
size=$((128 << 20))
for bin in $(nbd_binaries); do
	tag=$(basename "$(dirname "$bin")")
	img=$TESTTMP/raw-$tag.img sock=$TESTTMP/raw-$tag.sock log=$TESTTMP/raw-$tag.log
	truncate -s $size "$img"
	if ! start_server "$bin" "$log" "$sock" -t 2 "$img"; then
		notok "$tag: server starts"
		continue
	fi
	timeout 300 python3 "$SRCDIR/tests/nbd/nbd_raw.py" "$sock" $size | sed "s/^\(ok\|not ok\) - /\1 - $tag: /"
	[ "${PIPESTATUS[0]}" = 0 ] || NBD_FAILED=1
	for seed in 1 2 3; do
		check "$tag: random sessions (seed $seed) survived" \
			timeout 300 python3 "$SRCDIR/tests/nbd/nbd_fuzz.py" "$sock" $size 500 $seed
	done
	check "$tag: server still serves after the hostile clients" \
		nbdinfo --size "nbd+unix:///?socket=$sock"
	stop_server; st=$?
	check "$tag: SIGTERM: exit status 0 (got $st)" test $st = 0
	check "$tag: no sanitizer report" sanitizer_clean "$log"
done
nbd_finish
