#!/bin/bash
# SPDX-License-Identifier: MIT
# fio's nbd engine over 4 connections with crc32c verification (random
# writes, then a verifying read pass), then a mixed random read/write run;
# the backing file must hold what fio verified.
. "$(dirname "$0")/../nbd/lib.sh"
command -v fio >/dev/null || { skip "fio over NBD: fio missing"; exit 0; }
fio --enghelp=nbd >/dev/null 2>&1 || { skip "fio over NBD: fio lacks the nbd engine"; exit 0; }
img=$TESTTMP/f.img sock=$TESTTMP/f.sock log=$TESTTMP/f.log
truncate -s 256M "$img"
start_server "$AIOLOOP" "$log" "$sock" -t 2 "$img" || { notok "server starts"; exit 1; }
uri="nbd+unix:///?socket=$sock"
common="--verify_state_save=0 --ioengine=nbd --uri=$uri --numjobs=4 --size=32M --offset_increment=64M --group_reporting"
check "fio: 4 connections, random 4k-64k writes verified with crc32c" \
	timeout 120 fio --name=v $common --rw=randwrite --bsrange=4k-64k --iodepth=16 \
	--verify=crc32c --verify_fatal=1 --do_verify=1 --output="$TESTTMP/fio1.out"
check "fio: unaligned 512-byte random writes verified" \
	timeout 120 fio --name=u $common --size=4M --rw=randwrite --bs=512 --iodepth=8 \
	--verify=crc32c --verify_fatal=1 --output="$TESTTMP/fio2.out"
check "fio: mixed random read/write, 10 s" \
	timeout 60 fio --name=m $common --rw=randrw --bs=4k --iodepth=32 --runtime=5 \
	--time_based --output="$TESTTMP/fio3.out"
stop_server; st=$?
check "server exits 0 (got $st)" test $st = 0
if [ $NBD_FAILED != 0 ]; then tail -n 30 "$TESTTMP"/fio*.out; cat "$log"; fi
nbd_finish
