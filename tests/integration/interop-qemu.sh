#!/bin/bash
# SPDX-License-Identifier: MIT
# aioloop serve against qemu's NBD client, in two generations that negotiate
# differently: Debian 12's qemu 7.2 (structured replies, compact headers) and
# qemu 10 from bookworm-backports (extended headers, and WRITEs without
# NBD_CMD_FLAG_PAYLOAD_LEN), fetched by tests/interop/fetch-qemu.  Each runs
# over a Unix socket and TCP, plain and with TLS (X.509, certificates made by
# certtool): what was negotiated (server log, qemu-nbd --list), qemu-io
# patterns (aligned, byte-unaligned, FUA, flush, write-zeroes with and
# without unmap, trim), qemu-img map on a sparse export, and qemu-img convert
# of a random 64 MiB image into the export and back, compared; qemu-nbd as
# a client, re-exporting the export.  The qemu 10
# servers run the sanitizer build when there is one.
. "$(dirname "$0")/../nbd/lib.sh"

for t in qemu-io qemu-img qemu-nbd certtool python3; do
	command -v $t >/dev/null || { notok "interop: $t is not installed (scripts/install-deps)"; exit 1; }
done
if ! Q10=$("$SRCDIR/tests/interop/fetch-qemu" 2>&1); then
	notok "interop: qemu 10 could not be fetched: $Q10"
	exit 1
fi
Q72=$(dirname "$(command -v qemu-img)")
PKI=$TESTTMP/pki
"$SRCDIR/tests/harden/mkcerts.sh" "$PKI" >/dev/null 2>&1 || { notok "interop: certtool makes certificates"; exit 1; }

# A random 64 MiB source with a hole in the middle, for convert.
SRC=$TESTTMP/src.raw
head -c 24M /dev/urandom >"$SRC"
truncate -s 40M "$SRC"
head -c 24M /dev/urandom >>"$SRC"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# serve BIN LOG ARGS...: start a server, wait for its "listening" line.
serve() {
	local bin=$1 log=$2; shift 2
	"$bin" serve -v "$@" 2>"$log" &
	SRV_PID=$!
	NBD_PIDS="$NBD_PIDS $SRV_PID"
	for _ in $(seq 100); do
		grep -q 'listening on' "$log" && return 0
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$log" >&2
	return 1
}

# run_combo QEMU_VER BINDIR TRANSPORT(unix|tcp) SECURITY(plain|tls)
run_combo() {
	local qv=$1 qb=$2 tr=$3 sec=$4
	local tag="qemu $qv, $tr, $sec" img=$TESTTMP/e.img log=$TESTTMP/srv-$qv-$tr-$sec.log
	local bin=$AIOLOOP listen=() opts obj=() nbdl=() out=$TESTTMP/q.out
	local QIO=$qb/qemu-io QIMG=$qb/qemu-img QNBD=$qb/qemu-nbd

	if [ "$qv" = 10 ] && [ -x "${AIOLOOP_SAN:-}" ]; then
		bin=$AIOLOOP_SAN
	fi
	rm -f "$img"
	truncate -s 64M "$img"
	if [ "$tr" = unix ]; then
		local sock=$TESTTMP/i.sock
		rm -f "$sock"
		listen=(-U "$sock")
		opts="driver=nbd,server.type=unix,server.path=$sock"
		nbdl=(-k "$sock")
	else
		local port
		port=$(free_port)
		listen=(-b 127.0.0.1 -p "$port")
		opts="driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=$port"
		nbdl=(-b 127.0.0.1 -p "$port")
	fi
	if [ "$sec" = tls ]; then
		listen+=(--tls=require --tls-certificates "$PKI")
		obj=(--object "tls-creds-x509,id=tls0,dir=$PKI/client,endpoint=client")
		opts="$opts,tls-creds=tls0,tls-hostname=localhost"
		nbdl+=(--tls-creds tls0 --tls-hostname localhost)
	fi
	if ! serve "$bin" "$log" -t 2 "${listen[@]}" "$img"; then
		notok "$tag: server starts"
		return
	fi

	qio() { "$QIO" "${obj[@]}" --image-opts "$opts" "$@" >"$out" 2>&1 &&
		! grep -q -i 'fail\|error\|pattern' "$out"; }
	map() { "$QIMG" map "${obj[@]}" --output=json --image-opts "$opts" >"$TESTTMP/map.json"; }

	# What was negotiated.
	"$QNBD" "${obj[@]}" -L "${nbdl[@]}" >"$out" 2>&1
	check "$tag: qemu-nbd --list shows the export" \
		grep -q 'size:  67108864' "$out"
	if [ "$qv" = 10 ]; then
		check "$tag: qemu-nbd --list negotiates 64-bit transactions" \
			grep -q 'transaction size: 64-bit' "$out"
	else
		check "$tag: qemu-nbd --list stays with compact headers" \
			bash -c "! grep -q 'transaction size: 64-bit' '$out'"
	fi

	# A sparse export: all of it zero, then data where written.
	map
	check "$tag: qemu-img map: a fresh sparse export is all zero" bash -c \
		"grep -q '\"start\": 0, \"length\": 67108864,.*\"zero\": true' '$TESTTMP/map.json'"
	check "$tag: qemu-io: write patterns, read them back" \
		qio -c 'write -P 0x5a 0 4k' -c 'write -P 0xa5 1M 1M' -c 'write -P 0x3c 8M 32M' \
		-c 'read -P 0x5a 0 4k' -c 'read -P 0xa5 1M 1M' -c 'read -P 0x3c 8M 32M' \
		-c 'read -P 0 4k 1020k'
	map
	check "$tag: qemu-img map: data at 0, 1M and 8M, zero between" bash -c \
		"grep -q '\"start\": 0, \"length\": 4096,.*\"data\": true' '$TESTTMP/map.json' &&
		 grep -q '\"start\": 4096, \"length\": 1044480,.*\"zero\": true' '$TESTTMP/map.json' &&
		 grep -q '\"start\": 1048576, \"length\": 1048576,.*\"data\": true' '$TESTTMP/map.json' &&
		 grep -q '\"start\": 8388608, \"length\": 33554432,.*\"data\": true' '$TESTTMP/map.json'"
	if [ "$qv" = 10 ]; then
		check "$tag: the server saw extended headers and WRITEs without PAYLOAD_LEN" bash -c \
			"grep -q 'extended headers' '$log' && grep -q 'without PAYLOAD_LEN' '$log'"
	else
		check "$tag: the server saw structured replies without extended headers" bash -c \
			"grep -q 'structured replies' '$log' && ! grep -q 'extended headers' '$log'"
	fi
	check "$tag: qemu-io: unaligned writes (3 bytes at 1; across a 4K boundary)" \
		qio -c 'write -P 0xab 1 3' -c 'write -P 0xcd 4000 200' \
		-c 'read -P 0x5a 0 1' -c 'read -P 0xab 1 3' -c 'read -P 0x5a 4 3996' \
		-c 'read -P 0xcd 4000 200' -c 'read -P 0 4200 100'
	check "$tag: the backing file holds the unaligned bytes" bash -c \
		"cmp -s <(dd if='$img' bs=1 skip=1 count=3 2>/dev/null) <(printf '\xab\xab\xab')"
	check "$tag: qemu-io: FUA write, flush" \
		qio -c 'write -f -P 0x11 2M 64k' -c 'flush' -c 'read -P 0x11 2M 64k'
	check "$tag: qemu-io: write-zeroes with unmap" \
		qio -c 'write -P 0x22 3M 1M' -c 'write -z -u 3M 1M' -c 'read -P 0 3M 1M'
	check "$tag: qemu-io: write-zeroes without unmap" \
		qio -c 'write -P 0x23 4M 1M' -c 'write -z 4M 512k' -c 'read -P 0 4M 512k' \
		-c 'read -P 0x23 4608k 512k'
	check "$tag: qemu-io: trim, then flush; the range reads as zeroes" \
		qio -c 'write -P 0x24 5M 1M' -c 'discard 5M 1M' -c 'flush' -c 'read -P 0 5M 1M'
	map
	check "$tag: qemu-img map: the trimmed range is zero" bash -c \
		"grep -q '\"start\": 5242880, .*\"zero\": true' '$TESTTMP/map.json'"

	# qemu-nbd as a client: it opens the export and serves it again.
	local s2=$TESTTMP/reexport.sock
	rm -f "$s2" "$TESTTMP/qnbd.pid"
	if "$QNBD" "${obj[@]}" --image-opts "$opts" -k "$s2" --fork --pid-file "$TESTTMP/qnbd.pid" \
		>"$out" 2>&1; then
		check "$tag: qemu-nbd re-exports it: written through qemu-nbd, read through aioloop" bash -c \
			"qemu-io -f raw 'nbd+unix:///?socket=$s2' -c 'write -P 0x6b 6M 256k' -c 'read -P 0x3c 8M 1M' >'$out' 2>&1 &&
			 ! grep -q -i 'fail\|error\|pattern' '$out' &&
			 '$QIO' ${obj[*]} --image-opts '$opts' -c 'read -P 0x6b 6M 256k' | grep -q 'read 262144/262144'"
		kill "$(cat "$TESTTMP/qnbd.pid")" 2>/dev/null
	else
		notok "$tag: qemu-nbd re-exports it ($(head -c 200 "$out"))"
	fi

	# convert in, compare, convert out, compare.
	check "$tag: qemu-img convert of a random 64 MiB image into the export" \
		"$QIMG" convert -n "${obj[@]}" -f raw "$SRC" --target-image-opts "$opts"
	check "$tag: qemu-img compare: the export equals the image" \
		"$QIMG" compare -q "${obj[@]}" --image-opts "driver=raw,file.driver=file,file.filename=$SRC" "$opts"
	rm -f "$TESTTMP/back.raw"
	check "$tag: qemu-img convert out of the export is identical (cmp)" bash -c \
		"'$QIMG' convert ${obj[*]} --image-opts '$opts' -O raw '$TESTTMP/back.raw' && cmp '$SRC' '$TESTTMP/back.raw'"

	if stop_server; then ok "$tag: the server exits cleanly"; else notok "$tag: the server exits cleanly"; fi
	check "$tag: no sanitizer report, no disconnect for a bad request" bash -c \
		"sanitizer_clean '$log' && ! grep -q 'disconnecting a client' '$log'"
}
export -f sanitizer_clean

check "interop: qemu 10 runs from the cache ($("$Q10/qemu-img" --version | head -n 1))" \
	bash -c "'$Q10/qemu-img' --version | grep -q 'version 10\.'"
check "interop: the system's qemu stays 7.2 ($("$Q72/qemu-img" --version | head -n 1))" \
	bash -c "'$Q72/qemu-img' --version | grep -q 'version 7\.2'"
for qv in 10 7.2; do
	qb=$Q10
	[ "$qv" = 7.2 ] && qb=$Q72
	for tr in unix tcp; do
		for sec in plain tls; do
			run_combo "$qv" "$qb" "$tr" "$sec"
		done
	done
done
nbd_finish
