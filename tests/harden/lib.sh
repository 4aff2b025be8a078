# SPDX-License-Identifier: MIT
# Shared by tests/integration/harden-*.sh (sourced): result lines, servers
# started in the background and always stopped on exit.
#   ok WHAT / fail WHAT / skip WHAT REASON / check WHAT CMD...
#   start_server NAME SOCK ARGS...   runs $SERVE ARGS with -U SOCK, waits for
#                                     the socket; log in $TESTTMP/NAME.log
#   stop_server NAME
set -u
: "${TESTTMP:=$(mktemp -d)}"
: "${SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${AIOLOOP:=$SRCDIR/build/aioloop}"
PY=/usr/bin/python3
H=$SRCDIR/tests/harden
FAILED=0
declare -A PIDS=()

ok() { echo "ok - $*"; }
fail() { echo "not ok - $*"; FAILED=1; }
skip() { echo "skip - $1: $2"; }
check() {	# WHAT CMD...: ok if CMD succeeds
	local what=$1; shift
	if "$@" >>"$TESTTMP/check.log" 2>&1; then ok "$what"; else fail "$what"; fi
}
check_not() {	# WHAT CMD...: ok if CMD fails
	local what=$1; shift
	if "$@" >>"$TESTTMP/check.log" 2>&1; then fail "$what"; else ok "$what"; fi
}

cleanup_servers() {
	local n
	for n in "${!PIDS[@]}"; do
		kill "${PIDS[$n]}" 2>/dev/null
	done
	for n in "${!PIDS[@]}"; do
		wait "${PIDS[$n]}" 2>/dev/null
	done
	PIDS=()
}
trap cleanup_servers EXIT

SERVE=("$AIOLOOP" serve)

start_server() {	# NAME SOCK ARGS...
	local name=$1 sock=$2; shift 2
	rm -f "$sock"
	"${SERVE[@]}" -U "$sock" "$@" >"$TESTTMP/$name.log" 2>&1 &
	PIDS[$name]=$!
	for _ in $(seq 200); do
		[ -S "$sock" ] && return 0
		kill -0 "${PIDS[$name]}" 2>/dev/null || break
		sleep 0.05
	done
	echo "server $name did not start:"; cat "$TESTTMP/$name.log"
	return 1
}

stop_server() {	# NAME: SIGTERM, wait; 0 if it exited cleanly
	local name=$1 st
	kill "${PIDS[$name]}" 2>/dev/null
	wait "${PIDS[$name]}"; st=$?
	unset "PIDS[$name]"
	return $st
}

# The serve subcommand must exist in this build.
need_serve() {
	if ! "$AIOLOOP" serve --help >/dev/null 2>&1; then
		skip "$1" "this build has no 'aioloop serve'"
		exit 0
	fi
}

# TLS must be built in: a -Dtls=disabled build refuses --tls and says so
# (here, before it would read the empty key file and fail on that).
need_tls() {
	truncate -s 1M "$TESTTMP/need-tls.img"
	if "$AIOLOOP" serve --tls=on --tls-psk /dev/null -U "$TESTTMP/need-tls.sock" \
		"$TESTTMP/need-tls.img" 2>&1 | grep -q 'no TLS support'; then
		skip "$1" "this build has no TLS support (-Dtls=disabled or GnuTLS missing)"
		exit 0
	fi
}

# Sanitizer reports in a server log.
san_clean() {	# NAME
	! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$TESTTMP/$1.log"
}
