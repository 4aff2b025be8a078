#!/bin/bash
# SPDX-License-Identifier: MIT
# The encryption stage through NBD, checked against an independent
# implementation of dm-crypt's plain format (tests/crypt/plain.py, Python's
# cryptography package): random data written through aioloop serve
# (nbdcopy, then qemu-io's unaligned writes, FUA writes, flush and
# write-zeroes with and without unmap, the same commands applied to a plain
# shadow copy) decrypts sector by sector from the backing file to the
# shadow; and a backing encrypted by plain.py reads back as its plaintext
# through aioloop.  For 512- and 4096-byte sectors, with and without
# --iv-large-sectors, IV offsets, data offsets, both XTS key sizes, every
# file backend, and aes-cbc-essiv:sha256.  Then: discard refused (not
# advertised) unless --allow-discards, block status all data on a sparse
# backing, a read-only export, a wrong key reading garbage without harm,
# and key files of the wrong length or mode.
. "$(dirname "$0")/../nbd/lib.sh"

for t in nbdcopy nbdinfo qemu-io python3; do
	command -v $t >/dev/null || { skip "crypt: $t is not installed (scripts/install-deps)"; exit 77; }
done
python3 -c 'import cryptography' 2>/dev/null ||
	{ skip "crypt: python3-cryptography is not installed (scripts/install-deps)"; exit 77; }
[ -n "$NBD_PY" ] || { skip "crypt: python3-libnbd is not installed (scripts/install-deps)"; exit 77; }
PLAIN="python3 $SRCDIR/tests/crypt/plain.py"
head -c 64 /dev/urandom >"$TESTTMP/probe.key"
truncate -s 1M "$TESTTMP/probe.img"
if "$AIOLOOP" bench --encrypt aes-xts-plain64 --key-file "$TESTTMP/probe.key" --seconds 0.1 \
	"$TESTTMP/probe.img" 2>&1 | grep -q 'without GnuTLS'; then
	skip "crypt: this aioloop was built without GnuTLS"; exit 77
fi
SOCK=$TESTTMP/c.sock
URI="nbd+unix:///?socket=$SOCK"
SIZE=$((16 << 20))
umask 077
head -c 64 /dev/urandom >"$TESTTMP/k64"
head -c 32 /dev/urandom >"$TESTTMP/k32"
head -c 64 /dev/urandom >"$TESTTMP/kwrong"

# nbdpy CODE: run CODE with h, a libnbd handle connected to the export.
nbdpy() {
	"$NBD_PY" -c "import nbd
h = nbd.NBD()
h.connect_uri('$URI')
$1
h.shutdown()"
}
export -f nbdpy
export NBD_PY URI

# qemu-io commands, run on the export and on the shadow alike.
QIO_CMDS=(
	-c 'write -P 0x11 1000 3000'
	-c 'write -P 0x22 -f 8191 5'
	-c 'write -P 0x33 65536 131072'
	-c 'write -P 0x44 -f 300001 777777'
	-c 'flush'
	-c 'write -z 20000 70000'
	-c 'write -z -u 1048576 1048576'
	-c 'write -z -f 4000000 12345'
	-c 'write -P 0x55 16776000 1216'
)

# one NAME CIPHER KEY SECTOR LARGE(0|1) IV_OFFSET DATA_OFFSET ENGINE
one() {
	local name=$1 cipher=$2 key=$3 ss=$4 large=$5 ivo=$6 off=$7 eng=$8
	local img=$TESTTMP/b.img src=$TESTTMP/src.raw shadow=$TESTTMP/shadow.raw
	local dec=$TESTTMP/dec.raw log=$TESTTMP/srv.log out=$TESTTMP/out.raw
	local geo=(--encrypt-sector-size "$ss" --iv-offset "$ivo") pgeo=(--sector-size "$ss" --iv-offset "$ivo")
	[ "$large" = 1 ] && geo+=(--iv-large-sectors) && pgeo+=(--iv-large-sectors)

	# A backing of garbage around the data, the data written through aioloop.
	head -c $((off + SIZE + 4096)) /dev/urandom >"$img"
	head -c $SIZE /dev/urandom >"$src"
	cp "$src" "$shadow"
	start_server "$AIOLOOP" "$log" "$SOCK" --encrypt "$cipher" --key-file "$key" "${geo[@]}" \
		--offset "$off" --sizelimit $SIZE --engine "$eng" "$img" || { notok "$name: server starts"; return; }
	if ! nbdcopy "$src" "$URI"; then
		notok "$name: nbdcopy into the export"; stop_server; return
	fi
	if ! qemu-io -f raw "${QIO_CMDS[@]}" "$URI" >"$TESTTMP/qio.out" 2>&1; then
		notok "$name: qemu-io writes"; cat "$TESTTMP/qio.out" >&2; stop_server; return
	fi
	qemu-io -f raw "${QIO_CMDS[@]}" "$shadow" >/dev/null 2>&1
	nbdcopy "$URI" "$out"
	check "$name: reads back what was written" cmp -s "$out" "$shadow"
	stop_server || notok "$name: server exits cleanly"
	$PLAIN decrypt --cipher "$cipher" --key-file "$key" "${pgeo[@]}" --offset "$off" --size $SIZE "$img" "$dec"
	check "$name: the backing decrypts sector by sector to what was written" cmp -s "$dec" "$shadow"
	check "$name: the backing holds no plaintext" bash -c "! cmp -s <(tail -c +$((off + 1)) '$img' | head -c $SIZE) '$shadow'"

	# The other way: encrypted by plain.py, read through aioloop.
	head -c $SIZE /dev/urandom >"$src"
	$PLAIN encrypt --cipher "$cipher" --key-file "$key" "${pgeo[@]}" --offset "$off" "$src" "$img"
	start_server "$AIOLOOP" "$log" "$SOCK" --encrypt "$cipher" --key-file "$key" "${geo[@]}" \
		--offset "$off" --sizelimit $SIZE --engine "$eng" -r "$img" || { notok "$name: server starts"; return; }
	rm -f "$out"
	nbdcopy "$URI" "$out"
	check "$name: a backing encrypted independently reads back as its plaintext" cmp -s "$out" "$src"
	stop_server || notok "$name: read-only server exits cleanly"
}

one "xts-512 k64 uring"                aes-xts-plain64 "$TESTTMP/k64" 512 0 0 0 uring
one "xts-512 k32 aio, iv offset 3, data offset 1M" aes-xts-plain64 "$TESTTMP/k32" 512 0 3 1048576 aio
one "xts-4096 k64 threads, iv offset 16, data offset 64k" aes-xts-plain64 "$TESTTMP/k64" 4096 0 16 65536 threads
one "xts-4096 large-iv k64 sync, iv offset 8, data offset 8k" aes-xts-plain64 "$TESTTMP/k64" 4096 1 8 8192 sync
one "xts-4096 large-iv k32 uring" aes-xts-plain64 "$TESTTMP/k32" 4096 1 0 0 uring
one "essiv-512 k32 uring, iv offset 5" aes-cbc-essiv:sha256 "$TESTTMP/k32" 512 0 5 4096 uring

IMG=$TESTTMP/s.img LOG=$TESTTMP/srv.log
rm -f "$IMG"; truncate -s 8M "$IMG"
# Discard: refused (not advertised), unless asked for.
start_server "$AIOLOOP" "$LOG" "$SOCK" --encrypt aes-xts-plain64 --key-file "$TESTTMP/k64" "$IMG" &&
	nbdinfo --json "$URI" >"$TESTTMP/info.json"
check "discard is not advertised" python3 -c "import json,sys; d=json.load(open(sys.argv[1])); e=d['exports'][0]; sys.exit(0 if not e['can_trim'] and e['can_zero'] and not e['can_fast_zero'] else 1)" "$TESTTMP/info.json"
check "a discard is refused" bash -c "! nbdpy 'h.trim(65536, 0)' 2>/dev/null"
# Block status: a sparse backing is all data through the stage.
nbdinfo --map "$URI" >"$TESTTMP/map" 2>&1
check "block status reports all data on a sparse backing" bash -c "[ \$(wc -l <'$TESTTMP/map') = 1 ] && grep -q ' 0 *data' '$TESTTMP/map'"
stop_server
start_server "$AIOLOOP" "$LOG" "$SOCK" --encrypt aes-xts-plain64 --key-file "$TESTTMP/k64" --allow-discards "$IMG" &&
	nbdinfo --json "$URI" >"$TESTTMP/info.json"
check "--allow-discards advertises discard, still no fast zero" python3 -c "import json,sys; d=json.load(open(sys.argv[1])); e=d['exports'][0]; sys.exit(0 if e['can_trim'] and not e['can_fast_zero'] else 1)" "$TESTTMP/info.json"
check "--allow-discards: a discard succeeds" nbdpy 'h.trim(65536, 0)'
check "--allow-discards: write-zeroes still reads as zeroes" nbdpy '
h.pwrite(b"x" * 65536, 131072)
h.zero(65536, 131072)
assert h.pread(65536, 131072) == bytes(65536)'
stop_server

# Read-only: reads work, writes are refused.
head -c 8M /dev/urandom >"$TESTTMP/src.raw"
$PLAIN encrypt --key-file "$TESTTMP/k64" "$TESTTMP/src.raw" "$IMG"
start_server "$AIOLOOP" "$LOG" "$SOCK" --encrypt aes-xts-plain64 --key-file "$TESTTMP/k64" -r "$IMG"
check "read-only: reads decrypt" bash -c "nbdcopy '$URI' '$TESTTMP/ro.raw' && cmp -s '$TESTTMP/ro.raw' '$TESTTMP/src.raw'"
check "read-only: a write is refused" bash -c "! qemu-io -f raw -c 'write 0 4096' '$URI' 2>/dev/null | grep -q 'wrote'"
stop_server

# A wrong key reads garbage, and the server carries on.
start_server "$AIOLOOP" "$LOG" "$SOCK" --encrypt aes-xts-plain64 --key-file "$TESTTMP/kwrong" -r "$IMG"
rm -f "$TESTTMP/wrong.raw"
check "wrong key: reads succeed" nbdcopy "$URI" "$TESTTMP/wrong.raw"
check "wrong key: what it reads is not the plaintext" bash -c "! cmp -s '$TESTTMP/wrong.raw' '$TESTTMP/src.raw'"
check "wrong key: the server still answers" nbdinfo --size "$URI"
check "wrong key: the server exits cleanly" stop_server

# Keys: a wrong length is a clear error, a key file others may read a warning.
head -c 48 /dev/urandom >"$TESTTMP/k48"
"$AIOLOOP" serve -U "$SOCK" --encrypt aes-xts-plain64 --key-file "$TESTTMP/k48" "$IMG" 2>"$LOG"
st=$?
check "a 48-byte key is refused (exit 1)" test $st = 1
check "... saying which lengths fit" grep -q 'has 48 bytes; aes-xts-plain64 takes 32 or 64 bytes' "$LOG"
chmod 644 "$TESTTMP/k64"
start_server "$AIOLOOP" "$LOG" "$SOCK" --encrypt aes-xts-plain64 --key-file "$TESTTMP/k64" -r "$IMG"
check "a key file others can read is warned about" grep -q 'readable by others' "$LOG"
stop_server
chmod 600 "$TESTTMP/k64"
# (started by hand: a background job of a script reads /dev/null otherwise)
rm -f "$SOCK"
"$AIOLOOP" serve -U "$SOCK" --encrypt aes-xts-plain64 --key-file - -r "$IMG" <"$TESTTMP/k64" 2>"$LOG" &
SRV_PID=$!
NBD_PIDS="$NBD_PIDS $SRV_PID"
for _ in $(seq 100); do
	nbdinfo --size "$URI" >/dev/null 2>&1 && break
	sleep 0.1
done
check "--key-file - reads the key from standard input" bash -c "nbdcopy '$URI' '$TESTTMP/stdin.raw' && cmp -s '$TESTTMP/stdin.raw' '$TESTTMP/src.raw'"
stop_server
check "no key bytes in any log" bash -c "! grep -a -F -f <(od -An -tx1 '$TESTTMP/k64' | tr -d ' \n' | head -c 16; echo) '$LOG'"
nbd_finish
