#!/bin/bash
# SPDX-License-Identifier: MIT
# Real NBD clients against 'aioloop serve': nbdinfo (--json, --list, --map,
# --can), qemu-io pattern tests (byte-unaligned writes, FUA, zeroes with and
# without unmap, discard, flush), qemu-img info/convert/compare/map, nbdcopy
# over 4 connections, several exports.
. "$(dirname "$0")/../nbd/lib.sh"
for t in nbdinfo nbdcopy qemu-io qemu-img; do
	command -v $t >/dev/null || { skip "NBD clients: $t missing"; exit 0; }
done
img=$TESTTMP/c.img sock=$TESTTMP/c.sock log=$TESTTMP/c.log
uri="nbd+unix:///?socket=$sock"
truncate -s 64M "$img"
start_server "$AIOLOOP" "$log" "$sock" -t 2 "$img" || { notok "server starts"; exit 1; }

# nbdinfo
json=$(nbdinfo --json "$uri")
check "nbdinfo --json: size 64 MiB" grep -q '"export-size": 67108864' <<<"$json"
check "nbdinfo --json: base:allocation context" grep -q '"base:allocation"' <<<"$json"
check "nbdinfo --json: minimum block size 1" grep -q '"block_size_minimum": 1' <<<"$json"
check "nbdinfo --json: maximum block size 64 MiB" grep -q '"block_size_maximum": 67108864' <<<"$json"
check "nbdinfo --list: the default export" bash -c "nbdinfo --list --json '$uri' | grep -q '\"export-name\": \"\"'"
for f in flush fua multi-conn trim zero cache df; do
	check "nbdinfo --can $f" nbdinfo --can $f "$uri"
done
check "nbdinfo --is read-only is false" bash -c "! nbdinfo --is read-only '$uri'"
check "nbdinfo --map: all hole on an empty file" \
	bash -c "nbdinfo --map '$uri' | grep -q '^ *0 *67108864 *3 *hole,zero'"

# qemu-io: byte-granular and flagged writes
qio() { qemu-io -f raw "$uri" "$@" >"$TESTTMP/qio.out" 2>&1 && ! grep -q -i 'fail\|error\|pattern' "$TESTTMP/qio.out"; }
check "qemu-io: unaligned write 3 bytes at 1, read back" \
	qio -c 'write -P 0xab 1 3' -c 'read -P 0xab 1 3' -c 'read -P 0 0 1' -c 'read -P 0 4 4092'
check "qemu-io: unaligned write across a 4K boundary" \
	qio -c 'write -P 0xcd 4000 200' -c 'read -P 0xcd 4000 200' -c 'read -P 0 4200 100'
check "qemu-io: FUA write" qio -c 'write -f -P 0x11 1M 64k' -c 'read -P 0x11 1M 64k'
check "qemu-io: write-zeroes with unmap" \
	qio -c 'write -P 0x22 2M 1M' -c 'write -z -u 2M 1M' -c 'read -P 0 2M 1M'
check "qemu-io: write-zeroes without unmap" \
	qio -c 'write -P 0x23 3M 1M' -c 'write -z 3M 512k' -c 'read -P 0 3M 512k' -c 'read -P 0x23 3584k 512k'
check "qemu-io: discard then flush" qio -c 'write -P 0x24 4M 1M' -c 'discard 4M 1M' -c 'flush'
check "qemu-io: 32 MiB request" qio -c 'write -P 0x25 8M 32M' -c 'read -P 0x25 8M 32M'
# Read the file directly: data the server acknowledged is in it.
check "backing file holds the unaligned bytes" \
	bash -c "cmp -s <(dd if='$img' bs=1 skip=1 count=3 2>/dev/null) <(printf '\xab\xab\xab')"

# qemu-img
check "qemu-img info" bash -c "qemu-img info '$uri' | grep -q 'virtual size: 64 MiB'"
head -c 16M /dev/urandom >"$TESTTMP/src.raw"
truncate -s 64M "$TESTTMP/src.raw"
check "qemu-img convert to the export" qemu-img convert -n -f raw -O raw "$TESTTMP/src.raw" "$uri"
check "qemu-img compare" bash -c "qemu-img compare -q -f raw -F raw '$TESTTMP/src.raw' '$uri'"
check "qemu-img map: the tail is reported as zeroes" \
	bash -c "qemu-img map --output=json -f raw '$uri' | grep -q '\"zero\": true'"

# nbdcopy, 4 connections, both directions
head -c 64M /dev/urandom >"$TESTTMP/src2.raw"
check "nbdcopy to the export over 4 connections" nbdcopy -C 4 "$TESTTMP/src2.raw" "$uri"
check "nbdcopy back" nbdcopy -C 4 "$uri" "$TESTTMP/back.raw"
check "nbdcopy round trip is identical (cmp)" cmp "$TESTTMP/src2.raw" "$TESTTMP/back.raw"
check "the backing file is identical too (cmp)" cmp "$TESTTMP/src2.raw" "$img"
stop_server; st=$?
check "SIGTERM: exit 0" test $st = 0

# Several exports; -e names the default export, "" still reaches it.
truncate -s 8M "$TESTTMP/a.img"; truncate -s 16M "$TESTTMP/b.img"
printf 'BBBB' | dd of="$TESTTMP/b.img" bs=1 seek=4096 conv=notrunc 2>/dev/null
start_server "$AIOLOOP" "$log" "$sock" -t 1 -e first "$TESTTMP/a.img" \
	--export "second=$TESTTMP/b.img,ro,offset=4096,sizelimit=8M" || { notok "multi-export server starts"; exit 1; }
check "export '' is the default (8 MiB)" bash -c "[ \$(nbdinfo --size '$uri') = 8388608 ]"
check "export 'first' by name" bash -c "[ \$(nbdinfo --size 'nbd+unix:///first?socket=$sock') = 8388608 ]"
check "export 'second' with offset and size limit" \
	bash -c "[ \$(nbdinfo --size 'nbd+unix:///second?socket=$sock') = 8388608 ]"
check "export 'second' is read-only" nbdinfo --is read-only "nbd+unix:///second?socket=$sock"
check "export 'second' starts at the offset" \
	bash -c "qemu-io -f raw -r 'nbd+unix:///second?socket=$sock' -c 'read -P 0x42 0 4' | grep -q 'read 4/4'"
check "nbdinfo --list shows both" \
	bash -c "nbdinfo --list '$uri' | grep -c '^export=' | grep -q 2"
check "an unknown export is refused" bash -c "! nbdinfo --size 'nbd+unix:///nope?socket=$sock' 2>/dev/null"
stop_server
nbd_finish
