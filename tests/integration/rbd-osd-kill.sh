#!/bin/bash
# SPDX-License-Identifier: MIT
# The OSD killed under 'aioloop serve rbd:...' (bluestore, so that its data
# survives a restart).  While it is down for less than rados_osd_op_timeout,
# requests stall and then complete: fio's crc32c verify over 4 connections
# passes, and after the server, then the OSD, are restarted everything fio
# wrote reads back.  Down for longer, requests fail with a clear error
# (ETIMEDOUT, logged, EIO to the client) and the server serves again once
# the OSD is back, with what was flushed before the kill intact.
. "$(dirname "$0")/../nbd/lib.sh"
. "$SRCDIR/tests/ceph/lib.sh"
rbd_requires "RBD OSD kill"
command -v fio >/dev/null && fio --enghelp=nbd >/dev/null 2>&1 ||
	{ skip "RBD OSD kill: fio or its nbd engine missing"; exit 0; }
rbd_cluster --bluestore
sock=$TESTTMP/k.sock log=$TESTTMP/k.log
uri="nbd+unix:///?socket=$sock"
rbdc create --size 256M img

# ---- down briefly: requests stall, then complete; nothing is lost
start_server "$AIOLOOP" "$log" "$sock" -t 2 "rbd:rbd/img:conf=$CEPH_CONF:rados_osd_op_timeout=120" ||
	{ notok "server starts"; exit 1; }
fio_args="--verify_state_save=0 --ioengine=nbd --uri=$uri --numjobs=4 --size=8M --offset_increment=32M
	--rw=randwrite --bs=4k --iodepth=16 --verify=crc32c --verify_fatal=1 --group_reporting
	--rate_iops=300"
# shellcheck disable=SC2086
timeout 600 fio --name=k $fio_args --do_verify=1 --output="$TESTTMP/fio1.out" &
fio_pid=$!
sleep 3
"$SRCDIR/tests/ceph/cluster" kill-osd "$CEPH_DIR"
check "fio still running while the OSD is down (requests stall)" kill -0 $fio_pid
sleep 5
check "the OSD starts again" "$SRCDIR/tests/ceph/cluster" start-osd "$CEPH_DIR"
wait $fio_pid; st=$?
check "fio's writes across the outage verify (crc32c, 4 connections)" test $st = 0
stop_server; st=$?
check "server exits 0 after the outage (got $st)" test $st = 0
"$SRCDIR/tests/ceph/cluster" kill-osd "$CEPH_DIR"
"$SRCDIR/tests/ceph/cluster" start-osd "$CEPH_DIR" || notok "the OSD starts a second time"
start_server "$AIOLOOP" "$log" "$sock" -t 2 "rbd:rbd/img:conf=$CEPH_CONF" ||
	{ notok "server starts again"; exit 1; }
# shellcheck disable=SC2086
check "after server and OSD restarts, every acknowledged write reads back (fio verify_only)" \
	timeout 300 fio --name=k $fio_args --verify_only --output="$TESTTMP/fio2.out"
stop_server
[ $NBD_FAILED != 0 ] && { tail -n 20 "$TESTTMP"/fio*.out; cat "$log"; }

# ---- down for longer than the timeout: a clear error, then service again
start_server "$AIOLOOP" "$log" "$sock" "rbd:rbd/img:conf=$CEPH_CONF:rados_osd_op_timeout=4" ||
	{ notok "server starts with a 4 s OSD timeout"; exit 1; }
check "write and flush before the kill" bash -c "
	qemu-io -f raw -c 'write -P 0x42 100M 1M' -c flush '$uri' | grep -q '^wrote'"
"$SRCDIR/tests/ceph/cluster" kill-osd "$CEPH_DIR"
start=$(date +%s)
qemu-io -f raw -c "write -P 0x43 120M 64k" "$uri" >"$TESTTMP/qio.out" 2>&1
took=$(($(date +%s) - start))
check "a write to a dead OSD fails (EIO to the client)" grep -q 'write failed: Input/output error' "$TESTTMP/qio.out"
check "and fails after the timeout, not never (${took} s)" test $took -lt 60
check "the server says why: ETIMEDOUT from the cluster" grep -q 'write of 65536 bytes at 125829120: Connection timed out (no answer from the cluster' "$log"
check "the OSD starts again" "$SRCDIR/tests/ceph/cluster" start-osd "$CEPH_DIR"
check "the same server serves again: what was flushed is there, writes work" bash -c "
	qemu-io -f raw -c 'read -P 0x42 100M 1M' -c 'write -P 0x44 120M 64k' -c 'read -P 0x44 120M 64k' '$uri' >'$TESTTMP/qio2.out' 2>&1 &&
	! grep -q -i 'fail\|pattern' '$TESTTMP/qio2.out'"
stop_server; st=$?
check "server exits 0 (got $st)" test $st = 0
[ $NBD_FAILED != 0 ] && { cat "$TESTTMP"/qio*.out; cat "$log"; }
nbd_finish
