# SPDX-License-Identifier: MIT
# Shared helpers of the tests/integration/nbd-*.sh scripts (sourced).
# Starts servers on Unix sockets under $TESTTMP, kills everything it
# started on exit, prints "ok -"/"not ok -"/"skip -" lines.

: "${AIOLOOP:?run through meson test (scripts/check)}"
: "${TESTTMP:=$(mktemp -d /tmp/aioloop-t.XXXXXX)}"
: "${SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
NBD_FAILED=0
NBD_PIDS=""

nbd_cleanup() {
	for p in $NBD_PIDS; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}
trap nbd_cleanup EXIT

ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; NBD_FAILED=1; }
skip() { echo "skip - $*"; }
# check NAME CMD...: ok if CMD succeeds
check() {
	local name=$1; shift
	if "$@"; then ok "$name"; else notok "$name"; fi
}

# The python that has libnbd's bindings (nbdsh may pick another one).
NBD_PY=
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import nbd' 2>/dev/null; then NBD_PY=$p; break; fi
done

# start_server BIN LOG SOCK ARGS...: start "BIN serve -U SOCK ARGS" and wait
# until the socket answers; sets SRV_PID.  Returns 1 if it did not come up.
start_server() {
	local bin=$1 log=$2 sock=$3; shift 3
	rm -f "$sock"
	"$bin" serve -U "$sock" "$@" 2>"$log" &
	SRV_PID=$!
	NBD_PIDS="$NBD_PIDS $SRV_PID"
	for _ in $(seq 100); do
		[ -S "$sock" ] && nbdinfo --size "nbd+unix:///?socket=$sock" >/dev/null 2>&1 && return 0
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "server did not start:" >&2
	cat "$log" >&2
	return 1
}

# stop_server: SIGTERM, wait (bounded); returns the exit status.
stop_server() {
	local st
	kill -TERM "$SRV_PID" 2>/dev/null
	for _ in $(seq 400); do
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.05
	done
	wait "$SRV_PID"; st=$?
	return $st
}

# sanitizer_clean LOG: no ASan/UBSan report in LOG
sanitizer_clean() {
	! grep -q -E 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' "$1"
}

# The binaries to test: the normal one, and the sanitizer one when built.
nbd_binaries() {
	echo "$AIOLOOP"
	if [ -n "${AIOLOOP_SAN:-}" ] && [ -x "$AIOLOOP_SAN" ]; then echo "$AIOLOOP_SAN"; fi
}

nbd_finish() {
	exit $NBD_FAILED
}
