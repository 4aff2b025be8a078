#!/bin/bash
# SPDX-License-Identifier: MIT
# The NBD server over every engine backend (uring, aio, threads, sync),
# with and without O_DIRECT: unaligned qemu-io writes, a 4-connection
# nbdcopy round trip checked with cmp, and a clean SIGTERM.
. "$(dirname "$0")/../nbd/lib.sh"
for t in nbdcopy qemu-io; do
	command -v $t >/dev/null || { skip "NBD over each engine: $t missing"; exit 0; }
done
qio() {	# uri qemu-io-args...: all commands succeed and every pattern matches
	local uri=$1; shift
	qemu-io -f raw "$uri" "$@" >"$TESTTMP/qio.out" 2>&1 && ! grep -q -i 'fail\|error\|pattern' "$TESTTMP/qio.out"
}
head -c 24M /dev/urandom >"$TESTTMP/src.raw"
for engine in uring aio threads sync; do
	for direct in on off; do
		[ $engine = aio ] && [ $direct = off ] && continue	# aio needs O_DIRECT
		tag="$engine direct=$direct"
		img=$TESTTMP/e.img sock=$TESTTMP/e.sock log=$TESTTMP/e.log
		rm -f "$img"
		truncate -s 32M "$img"
		if ! start_server "$AIOLOOP" "$log" "$sock" -t 2 --engine $engine --direct=$direct "$img"; then
			if grep -q -i "direct" "$log" && [ $direct = on ]; then
				skip "$tag: O_DIRECT not available here"
			else
				notok "$tag: server starts"
			fi
			continue
		fi
		uri="nbd+unix:///?socket=$sock"
		check "$tag: unaligned writes read back" qio "$uri" \
			-c 'write -P 0x5a 1 4097' -c 'read -P 0x5a 1 4097' -c 'read -P 0 0 1' \
			-c 'write -z 100 50' -c 'read -P 0 100 50'
		check "$tag: nbdcopy round trip over 4 connections" \
			bash -c "nbdcopy -C 4 '$TESTTMP/src.raw' '$uri' && nbdcopy '$uri' '$TESTTMP/back.raw' && \
				cmp -s <(head -c 24M '$TESTTMP/back.raw') '$TESTTMP/src.raw'"
		stop_server; st=$?
		check "$tag: SIGTERM: exit 0 (got $st)" test $st = 0
	done
done
nbd_finish
