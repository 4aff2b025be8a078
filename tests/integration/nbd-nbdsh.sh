#!/bin/bash
# SPDX-License-Identifier: MIT
# Bad requests through libnbd with strict mode off (tests/nbd/nbdsh_checks.py)
# on a writable and on a read-only export, against the normal and the
# sanitizer binary; the read-only backing must be byte-identical after a
# hostile session (libnbd's and the raw client's).
. "$(dirname "$0")/../nbd/lib.sh"
[ -n "$NBD_PY" ] || { skip "libnbd python checks: python3-libnbd missing"; exit 0; }
for bin in $(nbd_binaries); do
	tag=$(basename "$(dirname "$bin")")
	img=$TESTTMP/n-$tag.img sock=$TESTTMP/n-$tag.sock log=$TESTTMP/n-$tag.log
	truncate -s 192M "$img"
	start_server "$bin" "$log" "$sock" -t 2 "$img" || { notok "$tag: server starts"; continue; }
	"$NBD_PY" "$SRCDIR/tests/nbd/nbdsh_checks.py" "nbd+unix:///?socket=$sock" rw | sed "s/^\(ok\|not ok\) - /\1 - $tag: /"
	[ "${PIPESTATUS[0]}" = 0 ] || NBD_FAILED=1
	stop_server; st=$?
	check "$tag: rw server exits 0 (got $st)" test $st = 0
	check "$tag: rw: no sanitizer report" sanitizer_clean "$log"

	# Read-only: a recognisable file, attacked, must not change.
	head -c 4M /dev/urandom >"$img"
	truncate -s 64M "$img"
	cp "$img" "$img.orig"
	start_server "$bin" "$log" "$sock" -r -t 1 "$img" || { notok "$tag: ro server starts"; continue; }
	"$NBD_PY" "$SRCDIR/tests/nbd/nbdsh_checks.py" "nbd+unix:///?socket=$sock" ro | sed "s/^\(ok\|not ok\) - /\1 - $tag: /"
	[ "${PIPESTATUS[0]}" = 0 ] || NBD_FAILED=1
	# The raw client's writes and trims too (its other checks expect a writable export).
	python3 - "$sock" <<'PYEOF' >/dev/null 2>&1
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
s.recv(18); s.sendall(struct.pack(">I", 3))
s.sendall(struct.pack(">QII", 0x49484156454F5054, 1, 0)); s.recv(10)
for cmd, ln in ((1, 4096), (4, 1 << 20), (6, 1 << 20), (1, 100 << 20)):
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, cmd, 1, 0, ln))
    if cmd == 1:
        s.sendall(b"\xff" * ln)
    s.recv(16)
PYEOF
	stop_server; st=$?
	check "$tag: ro server exits 0 (got $st)" test $st = 0
	check "$tag: read-only backing byte-identical after hostile sessions" cmp -s "$img" "$img.orig"
	check "$tag: ro: no sanitizer report" sanitizer_clean "$log"
	rm -f "$img" "$img.orig"
done
nbd_finish
