#!/bin/bash
# SPDX-License-Identifier: MIT
# `aioloop attach/detach/list` on the host, which has neither ublk_drv nor
# nbd: option checking, the reasons given when no frontend can work, and
# the empty listings.  The devices themselves are tested in a guest kernel
# (tests/vm/run).
set -u
A=${AIOLOOP:?}
T=${TESTTMP:?}
truncate -s 16M "$T/f.img"

t() {	# NAME EXPECTED-STATUS CMD...: ok if CMD exits with that status
	local name=$1 want=$2 st
	shift 2
	"$@" >"$T/out" 2>"$T/err"; st=$?
	if [ "$st" = "$want" ]; then echo "ok - $name"; else
		echo "not ok - $name: exit $st, want $want: $(head -c 300 "$T/err")"; fi
}

t "attach --help" 0 "$A" attach --help
t "attach without a file is a usage error" 2 "$A" attach
t "--block-size 1000 is refused" 2 "$A" attach --block-size 1000 "$T/f.img"
t "--queues 0 is refused" 2 "$A" attach --queues 0 "$T/f.img"
t "--direct maybe is refused" 2 "$A" attach --direct maybe "$T/f.img"
t "--engine nonsense is refused" 2 "$A" attach --engine nonsense "$T/f.img"
t "--data-path nonsense is refused" 2 "$A" attach --data-path nonsense "$T/f.img"
t "--poll -1 is refused" 2 "$A" attach --poll -1 "$T/f.img"
t "a missing backing file is an error" 1 "$A" attach "$T/missing.img"

if [ -e /dev/ublk-control ] || [ -e /dev/nbd0 ]; then
	echo "skip - attach says why no frontend works: this host has ublk or nbd"
	echo "skip - attach --ublk says the module is missing: this host has ublk or nbd"
else
	"$A" attach "$T/f.img" >"$T/out" 2>"$T/err"; st=$?
	if [ "$st" = 1 ] && grep -q ublk_drv "$T/err" && grep -q "nbd" "$T/err" && [ ! -s "$T/out" ]; then
		echo "ok - attach says why no frontend works"
	else
		echo "not ok - attach says why no frontend works: exit $st: $(cat "$T/err")"
	fi
	"$A" attach --ublk "$T/f.img" >"$T/out" 2>"$T/err"; st=$?
	if [ "$st" = 1 ] && grep -q "ublk_drv kernel module is not loaded" "$T/err"; then
		echo "ok - attach --ublk says the module is missing"
	else
		echo "not ok - attach --ublk says the module is missing: exit $st: $(cat "$T/err")"
	fi
fi

t "detach of a device not attached by aioloop fails" 1 "$A" detach /dev/ublkb4095
t "detach without arguments is a usage error" 2 "$A" detach
t "attach --recover of an unknown device fails" 1 "$A" attach --recover /dev/ublkb4095
t "resize without a device is a usage error" 2 "$A" resize
t "resize with a bad size is a usage error" 2 "$A" resize /dev/ublkb4095 12Q
t "resize of an unknown device fails" 1 "$A" resize /dev/ublkb4095
t "upgrade without a device is a usage error" 2 "$A" upgrade
t "upgrade of an unknown device fails" 1 "$A" upgrade /dev/ublkb4095
t "--recovery sometimes is refused" 2 "$A" attach --recovery sometimes "$T/f.img"
t "--timeout past a day is refused" 2 "$A" attach --timeout 86401 "$T/f.img"
t "-P with --recover is a usage error" 2 "$A" attach --recover /dev/nbd0 -P
t "-L with --recover is a usage error" 2 "$A" attach --recover /dev/nbd0 -L
t "-P, -L and --no-partscan are accepted" 0 "$A" attach -P -L --no-partscan --help
t "--show is accepted" 0 "$A" attach --show --help
t "detach with both -a and a device is a usage error" 2 "$A" detach -a /dev/ublkb4095
t "list -O with an unknown column is a usage error" 2 "$A" list -O NAME,NOPE
t "list -j of a missing file fails" 1 "$A" list -j "$T/missing.img"
t "list -n --raw -O every losetup column" 0 "$A" list -n --raw \
	-O NAME,BACK-FILE,BACK-INO,BACK-MAJ:MIN,MAJ:MIN,OFFSET,SIZELIMIT,RO,DIO,LOG-SEC,PARTSCAN
t "list" 0 "$A" list
if "$A" list --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert isinstance(d["aiodevices"], list)' 2>"$T/err"; then
	echo "ok - list --json is valid JSON"
else
	echo "not ok - list --json is valid JSON: $(cat "$T/err")"
fi
