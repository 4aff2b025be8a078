#!/bin/bash
# SPDX-License-Identifier: MIT
# Every numeric option of every subcommand, given bad values on the real
# command line (out of range, negative, "-0", trailing junk, empty, past
# 2^64, overflowing through a suffix): each is refused at once with exit 2
# and one line on stderr that names the option, and no server is left
# listening.  Good values are still taken.  (detach and list take no
# numbers.)  The parsers themselves are unit-tested in test-cli-args.
. "$(dirname "$0")/../nbd/lib.sh"
T=$TESTTMP
img=$T/f.img
sock=$T/s.sock
truncate -s 16M "$img"

# listening PORT: something listens on TCP PORT
listening() {
	[ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
}

# bad CMD OPTION-AS-NAMED VALUE ARGS...: "aioloop CMD ARGS..." exits 2 within
# 5 s, with one line on stderr naming OPTION-AS-NAMED, and leaves no Unix
# socket and no TCP listener on the port a wrapped 16-bit value would give.
bad() {
	local cmd=$1 name=$2 val=$3 st lines; shift 3
	rm -f "$sock"
	timeout 5 "$AIOLOOP" "$cmd" "$@" >"$T/out" 2>"$T/err"; st=$?
	lines=$(wc -l <"$T/err")
	if [ "$st" != 2 ]; then
		notok "$cmd $name '$val': exit $st, want 2: $(head -c 200 "$T/err")"
	elif [ "$lines" != 1 ] || ! grep -q -e "$name" "$T/err"; then
		notok "$cmd $name '$val': want one line naming $name, got: $(head -c 300 "$T/err")"
	elif [ -s "$T/out" ]; then
		notok "$cmd $name '$val': something on stdout"
	elif [ -e "$sock" ]; then
		notok "$cmd $name '$val': a Unix socket was left"
	else
		ok "$cmd $name '$val' refused: $(cat "$T/err")"
	fi
}

# ---- serve ----
# -p: the values getaddrinfo() would have taken and wrapped or refused late.
for v in 99999 65536 0 -1 -0 80x "" " 80" +80 18446744073709551616 4294977105 0x 1e3; do
	bad serve --port "$v" -b 127.0.0.1 -p "$v" "$img"
	if [[ $v =~ ^[0-9]+$ ]] && [ ${#v} -lt 12 ]; then
		w=$((v % 65536))
		if [ "$w" != 0 ] && listening "$w"; then
			notok "serve -p $v: something listens on port $w (wrapped)"
		fi
	fi
done
bad serve --port 99999 --port=99999 -b 127.0.0.1 "$img"

sizes_bad=(1Q -5 -0 "" 4k4 "4 k" 0x 99999999999999999T 18446744073709551616 16777216T 8388608T
	1.5G k)
for v in "${sizes_bad[@]}"; do
	bad serve --offset "$v" -U "$sock" --offset "$v" "$img"
	bad serve --sizelimit "$v" -U "$sock" --sizelimit "$v" "$img"
	bad serve "--export offset" "$v" -U "$sock" --export "a=$img,offset=$v" "$img"
	bad serve "--export sizelimit" "$v" -U "$sock" --export "a=$img,sizelimit=$v" "$img"
	bad serve --max-inflight "$v" -U "$sock" --max-inflight "$v" "$img"
	bad serve --max-conn-inflight "$v" -U "$sock" --max-conn-inflight "$v" "$img"
done
bad serve --max-conn-inflight 0 -U "$sock" --max-conn-inflight 0 "$img"
for v in 1000 0 -512 8k 512x 2048 ""; do
	bad serve --block-size "$v" -U "$sock" --block-size "$v" "$img"
done
for v in 0 1025 -1 4x 1k 99999999999999999999 ""; do
	bad serve --threads "$v" -U "$sock" -t "$v" "$img"
done
for v in -1 4294967296 3x ""; do
	bad serve --max-connections "$v" -U "$sock" --max-connections "$v" "$img"
done
for v in -1 1000001 5x 18446744073709551617; do
	bad serve --poll "$v" -U "$sock" --poll "$v" "$img"
done
for v in 0 3601 -1 10s 1.5 4294968; do
	bad serve --handshake-timeout "$v" -U "$sock" --handshake-timeout "$v" "$img"
	bad serve --payload-timeout "$v" -U "$sock" --payload-timeout "$v" "$img"
done
bad serve -t "" -U "$sock" "$img" -t

# ---- attach (refused before any device or daemon) ----
for v in "${sizes_bad[@]}"; do
	bad attach --offset "$v" -o "$v" "$img"
	bad attach --sizelimit "$v" --sizelimit "$v" "$img"
done
for v in 1000 0 -512 8k 4096x; do
	bad attach --block-size "$v" -b "$v" "$img"
done
for v in 0 65 -1 2x 1k 18446744073709551617 ""; do
	bad attach --queues "$v" --queues "$v" "$img"
done
for v in 0 1 4097 1k -1 64x 4294967360 ""; do
	bad attach --depth "$v" --depth "$v" "$img"
done

# ---- bench (refused before any demo image is written) ----
mkdir -p "$T/demo"
for v in 0 65M -1 4q 99999999999999999T ""; do
	TMPDIR=$T/demo bad bench --bs "$v" "--bs=$v" "$img"
done
for v in 0 4097 -1 32x 4294967297 ""; do
	TMPDIR=$T/demo bad bench --qd "$v" "--qd=$v" "$img"
done
for v in 0 -1 inf nan 86401 1x 0x10 ""; do
	TMPDIR=$T/demo bad bench --seconds "$v" "--seconds=$v" "$img"
done
for v in 0 -1 1Q 99999999999999999T ""; do
	TMPDIR=$T/demo bad bench --size "$v" "--size=$v"
done
for v in 0 1025 -1 8x; do
	TMPDIR=$T/demo bad bench --threads "$v" "--threads=$v" "$img"
done
for v in 4097 -1 1x; do
	TMPDIR=$T/demo bad bench --submit-batch "$v" "--submit-batch=$v" "$img"
done
check "bench: no demo image left by the refusals" bash -c "[ -z \"\$(ls -A '$T/demo')\" ]"

# ---- good values are still taken ----
truncate -s 16M "$img"
if command -v nbdinfo >/dev/null; then
	if start_server "$AIOLOOP" "$T/log" "$sock" -t 1 --offset 4k --sizelimit 1M \
		--block-size 4k --poll 0 --max-connections 3 --max-inflight 256M \
		--max-conn-inflight 0x1000000 --handshake-timeout 5 --payload-timeout 5 "$img"; then
		check "serve --offset 4k --sizelimit 1M (and more): a 1 MiB export" \
			bash -c "[ \$(nbdinfo --size 'nbd+unix:///?socket=$sock') = 1048576 ]"
		stop_server
	else
		notok "serve starts with good values: $(head -c 300 "$T/log")"
	fi
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	"$AIOLOOP" serve -t 1 -b 127.0.0.1 -p "0$port" "$img" 2>"$T/log" &
	srv=$!; NBD_PIDS="$NBD_PIDS $srv"
	for _ in $(seq 50); do listening "$port" && break; sleep 0.1; done
	check "serve -p 0$port: a leading zero is decimal" \
		bash -c "[ \$(nbdinfo --size nbd://127.0.0.1:$port) = 16777216 ]"
	kill -TERM $srv; wait $srv
else
	skip "serve with good values: nbdinfo missing"
fi
check "bench with good values runs" timeout 30 "$AIOLOOP" bench --engine=threads --bs=4k \
	--qd=2 --seconds=0.2 --size=1M --threads=2 --submit-batch=0 --direct=off "$img"
# attach with good values gets past the options (then fails on the file).
timeout 5 "$AIOLOOP" attach -o 4k --sizelimit 1M -b 512 --queues 64 --depth 4096 \
	"$T/missing.img" >/dev/null 2>"$T/err"; st=$?
check "attach -o 4k --sizelimit 1M -b 512 --queues 64 --depth 4096: options taken" \
	bash -c "[ $st = 1 ] && grep -q missing.img '$T/err'"
nbd_finish
