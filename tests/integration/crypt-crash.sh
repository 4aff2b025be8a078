#!/bin/bash
# SPDX-License-Identifier: MIT
# Crash consistency under SIGKILL with encryption on (tests/harden/crash.py,
# as harden-crash.sh runs it without): FUA writes and writes before an
# acknowledged flush survive kill -9 through the encryption stage, for
# 512- and 4096-byte encryption sectors.  About 30 s (CRASH_SECONDS).
. "$SRCDIR/tests/harden/lib.sh"
need_serve "crash consistency, encrypted"
if ! $PY -c 'import nbd' 2>/dev/null; then
	skip "crash consistency, encrypted" "python3-libnbd is not installed"; exit 0
fi
secs=${CRASH_SECONDS:-30}
seed=()
[ -n "${CRASH_SEED:-}" ] && seed=(--seed "$CRASH_SEED")
umask 077
head -c 64 /dev/urandom >"$TESTTMP/key"
truncate -s 1M "$TESTTMP/probe.img"
if "$AIOLOOP" bench --encrypt aes-xts-plain64 --key-file "$TESTTMP/key" --seconds 0.1 \
	"$TESTTMP/probe.img" 2>&1 | grep -q 'without GnuTLS'; then
	skip "crash consistency, encrypted" "this aioloop was built without GnuTLS"; exit 0
fi
rc=0
for ss in 512 4096; do
	d=$TESTTMP/crash-$ss
	mkdir -p "$d"
	$PY "$H/crash.py" --cmd "$AIOLOOP serve --encrypt aes-xts-plain64 --key-file $TESTTMP/key --encrypt-sector-size $ss -U {sock} {file}" \
		--dir "$d" --seconds $((secs / 2)) --conns 4 --blocks 2048 --zero-first \
		--name "crash consistency, encrypted, $ss-byte sectors" "${seed[@]}" || rc=1
	if [ $rc != 0 ]; then
		echo "server log:"; tail -n 20 "$d/server.log"
	fi
done
exit $rc
