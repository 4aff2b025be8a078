#!/bin/bash
# SPDX-License-Identifier: MIT
# The encryption stage over the RBD store, on a throwaway Ceph cluster,
# checked against the independent implementation of dm-crypt's plain
# format (tests/crypt/plain.py): random data written through 'aioloop serve
# --encrypt' on rbd:POOL/IMAGE (nbdcopy, then qemu-io's unaligned, FUA and
# write-zeroes commands, the same applied to a plain shadow copy) is
# exported raw by Ceph's own 'rbd export' and decrypts sector by sector to
# the shadow; an image encrypted by plain.py and loaded with 'rbd import'
# reads back as its plaintext through aioloop.  For 512- and 4096-byte
# sectors, with and without --iv-large-sectors, IV and data offsets and
# both XTS key sizes.  Then fio crc32c verify over 4 connections of an
# encrypted image, block status all data on a fresh (all hole) image,
# discard refused unless --allow-discards, a snapshot read-only, and the
# export following an image grown while served.
. "$(dirname "$0")/../nbd/lib.sh"
. "$SRCDIR/tests/ceph/lib.sh"
for t in nbdcopy nbdinfo qemu-io python3; do
	command -v $t >/dev/null || { skip "RBD crypt: $t is not installed (scripts/install-deps)"; exit 77; }
done
python3 -c 'import cryptography' 2>/dev/null ||
	{ skip "RBD crypt: python3-cryptography is not installed (scripts/install-deps)"; exit 77; }
[ -n "$NBD_PY" ] || { skip "RBD crypt: python3-libnbd is not installed (scripts/install-deps)"; exit 77; }
rbd_requires "RBD crypt"
rbd_cluster
PLAIN="python3 $SRCDIR/tests/crypt/plain.py"
sock=$TESTTMP/c.sock log=$TESTTMP/c.log
uri="nbd+unix:///?socket=$sock"
SIZE=$((16 << 20))
umask 077
head -c 64 /dev/urandom >"$TESTTMP/k64"
head -c 32 /dev/urandom >"$TESTTMP/k32"

# qemu-io commands, run on the export and on the shadow alike.
QIO_CMDS=(
	-c 'write -P 0x11 1000 3000'
	-c 'write -P 0x22 -f 8191 5'
	-c 'write -P 0x33 65536 131072'
	-c 'write -P 0x44 -f 300001 777777'
	-c 'flush'
	-c 'write -z 20000 70000'
	-c 'write -z -u 4194304 4194304'
	-c 'write -z -f 9000000 12345'
	-c 'write -P 0x55 16776000 1216'
)

# one NAME KEY SECTOR LARGE(0|1) IV_OFFSET DATA_OFFSET
one() {
	local name=$1 key=$2 ss=$3 large=$4 ivo=$5 off=$6
	local img=c$RANDOM src=$TESTTMP/src.raw shadow=$TESTTMP/shadow.raw
	local raw=$TESTTMP/raw.img dec=$TESTTMP/dec.raw out=$TESTTMP/out.raw
	local enc=(--encrypt aes-xts-plain64 --key-file "$key" --encrypt-sector-size "$ss" --iv-offset "$ivo")
	local pgeo=(--key-file "$key" --sector-size "$ss" --iv-offset "$ivo")
	[ "$large" = 1 ] && enc+=(--iv-large-sectors) && pgeo+=(--iv-large-sectors)

	# Written through aioloop into a fresh image, read raw by rbd export.
	rbdc create --size $(((off + SIZE) >> 20))M "$img" ||
		{ notok "$name: rbd create"; return; }
	head -c $SIZE /dev/urandom >"$src"
	cp "$src" "$shadow"
	start_server "$AIOLOOP" "$log" "$sock" -t 2 "${enc[@]}" --offset "$off" --sizelimit $SIZE \
		"rbd:rbd/$img:conf=$CEPH_CONF" || { notok "$name: server starts"; return; }
	if ! nbdcopy -C 4 "$src" "$uri"; then
		notok "$name: nbdcopy into the export"; stop_server; return
	fi
	if ! qemu-io -f raw "${QIO_CMDS[@]}" "$uri" >"$TESTTMP/qio.out" 2>&1 ||
		grep -q -i 'fail\|error' "$TESTTMP/qio.out"; then
		notok "$name: qemu-io writes"; cat "$TESTTMP/qio.out"; stop_server; return
	fi
	qemu-io -f raw "${QIO_CMDS[@]}" "$shadow" >/dev/null 2>&1
	rm -f "$out"
	nbdcopy "$uri" "$out"
	check "$name: reads back what was written" cmp -s "$out" "$shadow"
	stop_server || notok "$name: server exits cleanly"
	rm -f "$raw"
	if ! rbdc export "rbd/$img" "$raw" >/dev/null 2>&1; then
		notok "$name: rbd export"; return
	fi
	$PLAIN decrypt "${pgeo[@]}" --offset "$off" --size $SIZE "$raw" "$dec"
	check "$name: rbd export decrypts sector by sector to what was written" cmp -s "$dec" "$shadow"
	check "$name: the image holds no plaintext" bash -c "! cmp -s <(tail -c +$((off + 1)) '$raw' | head -c $SIZE) '$shadow'"

	# The other way: encrypted by plain.py, loaded by rbd import, read
	# through aioloop.
	head -c $((off + SIZE)) /dev/urandom >"$raw"
	head -c $SIZE /dev/urandom >"$src"
	$PLAIN encrypt "${pgeo[@]}" --offset "$off" "$src" "$raw"
	if ! rbdc import "$raw" "rbd/$img-in" >/dev/null 2>&1; then
		notok "$name: rbd import"; return
	fi
	start_server "$AIOLOOP" "$log" "$sock" -r "${enc[@]}" --offset "$off" --sizelimit $SIZE \
		"rbd:rbd/$img-in:conf=$CEPH_CONF" || { notok "$name: server starts read-only"; return; }
	rm -f "$out"
	nbdcopy -C 4 "$uri" "$out"
	check "$name: an image encrypted independently (rbd import) reads back as its plaintext" \
		cmp -s "$out" "$src"
	stop_server || notok "$name: read-only server exits cleanly"
	rbdc rm "rbd/$img" >/dev/null 2>&1
	rbdc rm "rbd/$img-in" >/dev/null 2>&1
}

one "xts-512 k64" "$TESTTMP/k64" 512 0 0 0
one "xts-512 k32, iv offset 3, data offset 1M" "$TESTTMP/k32" 512 0 3 1048576
one "xts-4096 k64, iv offset 16, data offset 4M" "$TESTTMP/k64" 4096 0 16 4194304
one "xts-4096 large-iv k32, iv offset 8" "$TESTTMP/k32" 4096 1 8 0
[ $NBD_FAILED != 0 ] && cat "$log"

# ---- fio crc32c verify through 4 connections of an encrypted image, and
# block status: a fresh image (all hole in the store) is all data through
# the stage, and discard is not advertised.
enc=(--encrypt aes-xts-plain64 --key-file "$TESTTMP/k64")
rbdc create --size 128M fio
start_server "$AIOLOOP" "$log" "$sock" -t 2 "${enc[@]}" "rbd:rbd/fio:conf=$CEPH_CONF" ||
	{ notok "server starts on an encrypted rbd:rbd/fio"; exit 1; }
nbdinfo --map "$uri" >"$TESTTMP/map" 2>&1
check "block status: a fresh image is all data through the stage" bash -c "
	[ \$(wc -l <'$TESTTMP/map') = 1 ] && grep -q '^ *0  *134217728  *0  *data' '$TESTTMP/map'"
nbdinfo --json "$uri" >"$TESTTMP/info.json"
check "discard is not advertised" python3 -c "import json,sys; e=json.load(open(sys.argv[1]))['exports'][0]; sys.exit(0 if not e['can_trim'] and e['can_zero'] else 1)" "$TESTTMP/info.json"
if command -v fio >/dev/null && fio --enghelp=nbd >/dev/null 2>&1; then
	check "fio: 4 connections, random 4k-64k encrypted writes verified with crc32c" \
		timeout 300 fio --name=v --verify_state_save=0 --ioengine=nbd --uri="$uri" --numjobs=4 \
		--size=8M --offset_increment=32M --group_reporting --rw=randwrite --bsrange=4k-64k \
		--iodepth=16 --verify=crc32c --verify_fatal=1 --do_verify=1 --output="$TESTTMP/fio.out"
else
	skip "fio over NBD: fio or its nbd engine missing"
fi
nbdcopy "$uri" "$TESTTMP/fio.nbd"
stop_server; st=$?
check "server exits 0 (got $st)" test $st = 0
check "fio's data is encrypted in the image: rbd export decrypts to what NBD read" bash -c "
	rbd -c '$CEPH_CONF' export rbd/fio '$TESTTMP/fio.raw' >/dev/null 2>&1 &&
	$PLAIN decrypt --key-file '$TESTTMP/k64' '$TESTTMP/fio.raw' '$TESTTMP/fio.dec' &&
	cmp -s '$TESTTMP/fio.dec' '$TESTTMP/fio.nbd'"
[ $NBD_FAILED != 0 ] && { tail -n 20 "$TESTTMP/fio.out" 2>/dev/null; cat "$log"; }

# ---- --allow-discards: discard reaches the store; write-zeroes still
# writes encrypted zeroes (a hole in the image would decrypt to garbage).
start_server "$AIOLOOP" "$log" "$sock" "${enc[@]}" --allow-discards "rbd:rbd/fio:conf=$CEPH_CONF" ||
	{ notok "server starts with --allow-discards"; exit 1; }
check "--allow-discards: discard and write-zeroes" bash -c "
	qemu-io -f raw -c 'write -P 0x66 0 8M' -c 'discard 4M 4M' -c 'write -z -u 0 4M' -c 'read -P 0 0 4M' '$uri' \
		>'$TESTTMP/qio.out' 2>&1 && ! grep -q -i 'fail\|error\|pattern' '$TESTTMP/qio.out'"
stop_server
check "--allow-discards: the discarded object is gone from the image (rbd diff)" bash -c "
	rbd -c '$CEPH_CONF' diff rbd/fio --format json | python3 -c '
import json, sys
ext = json.load(sys.stdin)
sys.exit(0 if not any(e[\"offset\"] < 8 << 20 and e[\"offset\"] + e[\"length\"] > 4 << 20 for e in ext) else 1)'"
rm -f "$TESTTMP/fio.raw"
check "--allow-discards: write-zeroes left encrypted zeroes, not a hole" bash -c "
	rbd -c '$CEPH_CONF' export rbd/fio '$TESTTMP/fio.raw' >/dev/null 2>&1 &&
	$PLAIN decrypt --key-file '$TESTTMP/k64' --size 4194304 '$TESTTMP/fio.raw' '$TESTTMP/z.dec' &&
	cmp -s '$TESTTMP/z.dec' <(head -c 4194304 /dev/zero) &&
	! cmp -s <(head -c 4194304 '$TESTTMP/fio.raw') <(head -c 4194304 /dev/zero)"

# ---- a snapshot of an encrypted image is read-only and decrypts
rbdc snap create fio@s1 >/dev/null 2>&1
start_server "$AIOLOOP" "$log" "$sock" "${enc[@]}" "rbd:rbd/fio@s1:conf=$CEPH_CONF" ||
	{ notok "server starts on a snapshot"; exit 1; }
check "snapshot: read-only export" bash -c "nbdinfo --json '$uri' | grep -q '\"is_read_only\": true'"
check "snapshot: decrypts (zeroes written before it)" bash -c "
	qemu-io -f raw -r -c 'read -P 0 0 4M' '$uri' >'$TESTTMP/qio.out' 2>&1 && ! grep -q -i 'fail\|error\|pattern' '$TESTTMP/qio.out'"
stop_server; st=$?
check "server exits 0 (got $st)" test $st = 0

# ---- an encrypted export follows the image grown while served, in whole
# encryption sectors, and the grown part is encrypted like the rest
enc4=(--encrypt aes-xts-plain64 --key-file "$TESTTMP/k32" --encrypt-sector-size 4096)
rbdc create --size 16M grow
start_server "$AIOLOOP" "$log" "$sock" "${enc4[@]}" --offset 1000000 "rbd:rbd/grow:conf=$CEPH_CONF" ||
	{ notok "server starts on rbd:rbd/grow"; exit 1; }
check "grown: the export is the image after the offset, in whole sectors" \
	test "$(nbdinfo --size "$uri")" = $((((16 << 20) - 1000000) / 4096 * 4096))
rbdc resize --size 32M grow >/dev/null 2>&1
want=$((((32 << 20) - 1000000) / 4096 * 4096))
for _ in $(seq 100); do
	[ "$(nbdinfo --size "$uri")" = $want ] && break
	sleep 0.1
done
check "grown: after rbd resize while served, new connections see $want bytes" \
	test "$(nbdinfo --size "$uri")" = $want
head -c 4M /dev/urandom >"$TESTTMP/tail.raw"
check "grown: the new end written through NBD" "$NBD_PY" -c '
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pwrite(open(sys.argv[2], "rb").read(), int(sys.argv[3]) - (4 << 20))
h.shutdown()' "$uri" "$TESTTMP/tail.raw" $want
stop_server; st=$?
check "server exits 0 (got $st)" test $st = 0
check "grown: the new end decrypts from rbd export to what was written" bash -c "
	rm -f '$TESTTMP/grow.raw' && rbd -c '$CEPH_CONF' export rbd/grow '$TESTTMP/grow.raw' >/dev/null 2>&1 &&
	$PLAIN decrypt --key-file '$TESTTMP/k32' --sector-size 4096 --offset 1000000 --size $want \
		'$TESTTMP/grow.raw' '$TESTTMP/grow.dec' &&
	cmp -s <(tail -c 4194304 '$TESTTMP/grow.dec') '$TESTTMP/tail.raw'"
[ $NBD_FAILED != 0 ] && cat "$log"
nbd_finish
