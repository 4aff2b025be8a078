#!/bin/bash
# SPDX-License-Identifier: MIT
# NBD server speed, not a test: fio's nbd engine, one connection over a
# Unix socket, 4k random read and write at QD32 on a 1 GiB file, against
# aioloop serve, qemu-nbd and nbdkit, with fio's io_uring O_DIRECT on the
# raw file as the reference.  Usage: tests/nbd/bench.sh [SECONDS] [DIR]
set -u
secs=${1:-10}
dir=${2:-/var/tmp/aioloop-nbd-bench}
bin=${AIOLOOP:-$(dirname "$0")/../../build/aioloop}
mkdir -p "$dir"
img=$dir/bench.img sock=$dir/bench.sock
[ -f "$img" ] && [ "$(stat -c %s "$img")" = $((1 << 30)) ] ||
	fio --name=fill --filename="$img" --size=1G --rw=write --bs=1M --direct=1 \
		--ioengine=libaio --output=/dev/null
pids=""
trap 'for p in $pids; do kill $p 2>/dev/null; done; rm -f "$sock"' EXIT

iops() {	# rw fio-args...: print IOPS
	local rw=$1; shift
	fio --name=b --rw="$rw" --bs=4k --iodepth=32 --runtime="$secs" --time_based \
		--size=1G --output-format=terse --terse-version=3 "$@" 2>/dev/null |
		awk -F';' '$1 == 3 { print $8 + $49 }'
}
cpu_ticks() {	# pid: utime+stime of all its threads, in clock ticks
	awk '{ print $14 + $15 }' /proc/"$1"/stat
}
nbdrun() {	# name server-cmd...
	local name=$1; shift
	rm -f "$sock"
	"$@" >/dev/null 2>&1 &
	local p=$!; pids="$pids $p"
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
	sleep 0.3
	local c0 r w c1 n
	c0=$(cpu_ticks $p)
	r=$(iops randread --ioengine=nbd --uri="nbd+unix:///?socket=$sock")
	w=$(iops randwrite --ioengine=nbd --uri="nbd+unix:///?socket=$sock")
	c1=$(cpu_ticks $p)
	n=$((r * secs + w * secs))
	printf '%-10s randread %8s  randwrite %8s   server CPU %s us/request\n' "$name" "$r" "$w" \
		"$([ $n -gt 0 ] && echo $(( (c1 - c0) * 10000 * 1000 / n / 1000 )) || echo -)"
	kill $p; wait $p 2>/dev/null
}
printf '%-10s randread %8s  randwrite %8s\n' "raw" \
	"$(iops randread --ioengine=io_uring --direct=1 --filename="$img")" \
	"$(iops randwrite --ioengine=io_uring --direct=1 --filename="$img")"
nbdrun aioloop "$bin" serve -t 1 -U "$sock" "$img"
command -v qemu-nbd >/dev/null &&
	nbdrun qemu-nbd qemu-nbd --cache=none --aio=io_uring -f raw -t -k "$sock" "$img"
command -v nbdkit >/dev/null &&
	nbdrun nbdkit nbdkit -f -U "$sock" file "$img" cache=none
