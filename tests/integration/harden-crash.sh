#!/bin/bash
# SPDX-License-Identifier: MIT
# Crash consistency under SIGKILL (tests/harden/crash.py): a random write
# workload over 4 NBD connections with FUA writes and flushes, the server
# killed at random moments and restarted; every write acknowledged with FUA
# or before an acknowledged flush must be intact.  About 60 s in all
# (CRASH_SECONDS); the seed is printed (CRASH_SEED reruns one).
. "$SRCDIR/tests/harden/lib.sh"
need_serve "crash consistency"
if ! $PY -c 'import nbd' 2>/dev/null; then
	skip "crash consistency" "python3-libnbd is not installed"; exit 0
fi
secs=${CRASH_SECONDS:-60}
seed=()
[ -n "${CRASH_SEED:-}" ] && seed=(--seed "$CRASH_SEED")
rc=0
for engine in uring threads; do
	d=$TESTTMP/crash-$engine
	mkdir -p "$d"
	[ "$engine" = uring ] && share=$((secs * 2 / 3)) || share=$((secs / 3))
	$PY "$H/crash.py" --cmd "$AIOLOOP serve --engine $engine -U {sock} {file}" --dir "$d" \
		--seconds "$share" --conns 4 --blocks 2048 --name "crash consistency, engine $engine" \
		"${seed[@]}" || rc=1
	if [ $rc != 0 ]; then
		echo "server log:"; tail -n 20 "$d/server.log"
	fi
done
exit $rc
