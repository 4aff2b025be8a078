#!/bin/bash
# SPDX-License-Identifier: MIT
# 'aioloop serve rbd:POOL/IMAGE' on a throwaway Ceph cluster: fio crc32c
# verify over 4 NBD connections, an nbdcopy round trip checked against
# what the rbd tool exports, qemu-io patterns, block status on a fresh image
# (all hole) and after writes, discard and write-zeroes, a snapshot served
# read-only, an offset/size-limit window, and the export's size following
# the image's, at open and, for new connections, when it is resized while
# served; then a round trip, FUA, discard, zeroes and block status under
# the sanitizer build's server, completions crossing loops, and a resize.
. "$(dirname "$0")/../nbd/lib.sh"
. "$SRCDIR/tests/ceph/lib.sh"
rbd_requires "RBD serve"
[ -n "$NBD_PY" ] || { skip "RBD serve: python3-libnbd is not installed (scripts/install-deps)"; exit 0; }
rbd_cluster
sock=$TESTTMP/r.sock log=$TESTTMP/r.log
uri="nbd+unix:///?socket=$sock"
qio() { qemu-io -f raw "$uri" "$@" >"$TESTTMP/qio.out" 2>&1 && ! grep -q -i 'fail\|error\|pattern' "$TESTTMP/qio.out"; }
map() { nbdinfo --map "$uri" | awk '{print $1, $2, $3}' | tr '\n' ';'; }

# ---- fio verify, several connections, on a fresh image
rbdc create --size 256M fio
start_server "$AIOLOOP" "$log" "$sock" -t 2 "rbd:rbd/fio:conf=$CEPH_CONF" ||
	{ notok "server starts on rbd:rbd/fio"; exit 1; }
check "export size is the image's (256 MiB)" test "$(nbdinfo --size "$uri")" = $((256 << 20))
check "a fresh image is all hole (nbdinfo --map)" test "$(map)" = "0 268435456 3;"
if command -v fio >/dev/null && fio --enghelp=nbd >/dev/null 2>&1; then
	common="--verify_state_save=0 --ioengine=nbd --uri=$uri --numjobs=4 --size=16M --offset_increment=64M --group_reporting"
	check "fio: 4 connections, random 4k-64k writes verified with crc32c" \
		timeout 300 fio --name=v $common --rw=randwrite --bsrange=4k-64k --iodepth=16 \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --output="$TESTTMP/fio1.out"
	check "fio: unaligned 512-byte random writes verified" \
		timeout 300 fio --name=u $common --size=2M --rw=randwrite --bs=512 --iodepth=8 \
		--verify=crc32c --verify_fatal=1 --output="$TESTTMP/fio2.out"
	# What fio wrote is in the image for every reader: rbd export.
	check "fio's data reads back identical through librbd (rbd export)" bash -c "
		nbdcopy '$uri' '$TESTTMP/nbd.raw' && rbd -c '$CEPH_CONF' export rbd/fio '$TESTTMP/rbd.raw' >/dev/null 2>&1 &&
		cmp '$TESTTMP/nbd.raw' '$TESTTMP/rbd.raw'"
	check "block status after writes: data where fio wrote, holes elsewhere" bash -c "
		nbdinfo --map '$uri' | awk '\$3==0 && \$1 < 16777216 {d=1} \$3==3 && \$1 >= 16777216 && \$1 < 67108864 {h=1} END {exit !(d && h)}'"
else
	skip "fio over NBD: fio or its nbd engine missing"
fi
stop_server; st=$?
check "server exits 0 (got $st)" test $st = 0
[ $NBD_FAILED != 0 ] && { tail -n 20 "$TESTTMP"/fio*.out 2>/dev/null; cat "$log"; }

# ---- nbdcopy round trip, qemu-io patterns, discard, zeroes, block status
rbdc create --size 64M img
start_server "$AIOLOOP" "$log" "$sock" -t 2 "rbd:rbd/img:conf=$CEPH_CONF" ||
	{ notok "server starts on rbd:rbd/img"; exit 1; }
head -c 64M /dev/urandom >"$TESTTMP/src.raw"
check "nbdcopy to the export over 4 connections" nbdcopy -C 4 "$TESTTMP/src.raw" "$uri"
check "nbdcopy back" nbdcopy -C 4 "$uri" "$TESTTMP/back.raw"
check "nbdcopy round trip is identical (cmp)" cmp "$TESTTMP/src.raw" "$TESTTMP/back.raw"
check "the image is identical too (rbd export, cmp)" bash -c "
	rbd -c '$CEPH_CONF' export rbd/img '$TESTTMP/img.raw' >/dev/null 2>&1 && cmp '$TESTTMP/src.raw' '$TESTTMP/img.raw'"
check "qemu-io: write and read back patterns, unaligned too" \
	qio -c "write -P 0x5a 0 1M" -c "write -P 0xa5 1000 3000" -c "write -P 0x11 -q 9437184 1" \
	-c "read -P 0x5a 0 1000" -c "read -P 0xa5 1000 3000" -c "read -P 0x5a 4000 1044576" \
	-c "read -P 0x11 9437184 1"
check "qemu-io: FUA write and flush" qio -c "write -f -P 0x77 2M 64k" -c "flush" -c "read -P 0x77 2M 64k"
check "qemu-io: discard reads back as zeroes, partial objects too" \
	qio -c "discard 4M 4M" -c "read -P 0 4M 4M" -c "discard 12345 100000" -c "read -P 0 12345 100000" \
	-c "read -P 0x5a 4000 8345" -c "read -P 0x5a 112345 1000"
check "qemu-io: write-zeroes, with and without unmap" \
	qio -c "write -z 16M 1M" -c "read -P 0 16M 1M" -c "write -z -u 20M 4M" -c "read -P 0 20M 4M"
check "block status: the discarded object is a hole" bash -c "
	nbdinfo --map '$uri' | awk '\$1 == 4194304 && \$2 >= 4194304 && \$3 == 3 {f=1} END {exit !f}'"
check "block status: data before it" bash -c "
	nbdinfo --map '$uri' | awk 'NR == 1 && \$1 == 0 && \$3 == 0 {f=1} END {exit !f}'"
stop_server; st=$?
check "server exits 0 (got $st)" test $st = 0

# ---- a snapshot is read-only and keeps its data
rbdc snap create img@s1 >/dev/null
start_server "$AIOLOOP" "$log" "$sock" "rbd:rbd/img:conf=$CEPH_CONF" || { notok "server starts"; exit 1; }
check "head written after the snapshot" qio -c "write -P 0x99 0 64k"
stop_server
start_server "$AIOLOOP" "$log" "$sock" "rbd:rbd/img@s1:conf=$CEPH_CONF" ||
	{ notok "server starts on a snapshot"; exit 1; }
check "a snapshot's export is read-only" bash -c "nbdinfo --json '$uri' | grep -q '\"is_read_only\": true'"
check "a client cannot write to the snapshot (qemu-io)" bash -c "! qemu-io -f raw -c 'write -P 1 0 4k' '$uri' 2>&1 | grep -q '^wrote'"
check "the snapshot has the data of its time" qio -r -c "read -P 0x5a 0 1000" -c "read -P 0 12345 1000" -c "read -P 0x77 2M 64k"
stop_server

# ---- a window: offset and size limit, as for files
start_server "$AIOLOOP" "$log" "$sock" --offset 2M --sizelimit 1M "rbd:rbd/img:conf=$CEPH_CONF" ||
	{ notok "server starts with --offset/--sizelimit"; exit 1; }
check "window: size is the limit" test "$(nbdinfo --size "$uri")" = $((1 << 20))
check "window: offset 0 is the image's 2 MiB" qio -c "read -P 0x77 0 64k"
stop_server

# ---- the export follows the image's size at open
rbdc resize --size 128M img >/dev/null 2>&1
start_server "$AIOLOOP" "$log" "$sock" "rbd:rbd/img:conf=$CEPH_CONF" || { notok "server starts"; exit 1; }
check "after rbd resize the export is 128 MiB" test "$(nbdinfo --size "$uri")" = $((128 << 20))
check "the grown part reads as zeroes and is a hole" bash -c "
	qemu-io -f raw -c 'read -P 0 64M 64M' '$uri' | grep -q '^read' &&
	nbdinfo --map '$uri' | tail -n 1 | awk '\$1 + \$2 == 134217728 && \$3 == 3 {f=1} END {exit !f}'"
# The image grown by another client while served: a new connection sees
# the new size (the store watches the image), one already open keeps its own.
# (The held connection checks on the server's side: libnbd's own range
# check is off, and a read past the size it was told must be refused.)
exec 7> >(exec "$NBD_PY" -c '
import nbd, sys
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri(sys.argv[1])
sys.stdin.read()
size = h.get_size()
h.pread(4096, size - 4096)
try:
    h.pread(4096, size)
    print("read past", size)
except nbd.Error:
    print("refused past", size)
h.shutdown()' "$uri" >"$TESTTMP/held.out" 2>&1)
held=$!
sleep 1
rbdc resize --size 192M img >/dev/null 2>&1
for _ in $(seq 100); do
	[ "$(nbdinfo --size "$uri")" = $((192 << 20)) ] && break
	sleep 0.1
done
check "rbd resize while served: a new connection sees 192 MiB" test "$(nbdinfo --size "$uri")" = $((192 << 20))
check "... and can read the new end" bash -c "qemu-io -f raw -c 'read -P 0 191M 1M' '$uri' | grep -q '^read'"
check "... and write it" qio -c "write -P 0x42 191M 1M" -c "read -P 0x42 191M 1M"
exec 7>&-
wait $held
check "a connection open across the resize keeps the size it was told" \
	test "$(cat "$TESTTMP/held.out")" = "refused past $((128 << 20))"
check "the server logged the new size" grep -q "the export is now $((192 << 20)) bytes" "$log"
stop_server; st=$?
check "server exits 0 (got $st)" test $st = 0
check "what was written at the new end is in the image (rbd export)" bash -c "
	rm -f '$TESTTMP/grown.raw' && rbd -c '$CEPH_CONF' export rbd/img '$TESTTMP/grown.raw' >/dev/null 2>&1 &&
	cmp -s <(tail -c 1048576 '$TESTTMP/grown.raw') <(head -c 1048576 /dev/zero | tr '\\0' '\\102')"
[ $NBD_FAILED != 0 ] && cat "$log"

# ---- the sanitizer build's server (ASan+UBSan), where it is built: two
# workers, so that completions cross between loops
if [ -n "${AIOLOOP_SAN:-}" ] && [ -x "$AIOLOOP_SAN" ]; then
	rbdc create --size 64M san
	start_server "$AIOLOOP_SAN" "$log" "$sock" -t 2 "rbd:rbd/san:conf=$CEPH_CONF" ||
		{ notok "sanitizer server starts"; exit 1; }
	check "sanitizer server: nbdcopy round trip over 4 connections" bash -c "
		nbdcopy -C 4 '$TESTTMP/src.raw' '$uri' && nbdcopy -C 4 '$uri' '$TESTTMP/san.raw' &&
		cmp '$TESTTMP/src.raw' '$TESTTMP/san.raw'"
	check "sanitizer server: FUA, discard, zeroes, block status" bash -c "
		qemu-io -f raw -c 'write -f -P 7 0 64k' -c 'discard 4M 4M' -c 'write -z 8M 1M' -c flush '$uri' >/dev/null &&
		nbdinfo --map '$uri' | grep -q hole"
	rbdc resize --size 96M san >/dev/null 2>&1
	for _ in $(seq 100); do
		[ "$(nbdinfo --size "$uri")" = $((96 << 20)) ] && break
		sleep 0.1
	done
	check "sanitizer server: follows rbd resize while served" test "$(nbdinfo --size "$uri")" = $((96 << 20))
	stop_server; st=$?
	check "sanitizer server exits 0 (got $st)" test $st = 0
	check "sanitizer server: no ASan/UBSan/LSan report" sanitizer_clean "$log"
	[ $NBD_FAILED != 0 ] && cat "$log"
else
	skip "RBD serve under ASan/UBSan: build-san not built"
fi
nbd_finish
