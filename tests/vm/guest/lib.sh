# SPDX-License-Identifier: MIT
# Helpers for guest scenario scripts (sourced; busybox sh).
# plan NAME...      announce checks, so a hang is reported as "not ok"
# ok NAME / fail NAME: WHY / skip NAME: WHY
# check NAME CMD... ok if CMD succeeds, else "not ok" with its output
plan() { for p in "$@"; do echo "plan - $p"; done; }
ok() { echo "ok - $*"; }
fail() { echo "not ok - $*"; }
skip() { echo "skip - $*"; }
check() {
	_name=$1; shift
	if _out=$("$@" 2>&1); then
		ok "$_name"
	else
		fail "$_name: $(echo "$_out" | tail -n 3 | tr '\n' ' ')"
	fi
}
# wait_for PATH [TENTHS]: until PATH exists (default 10 s)
wait_for() {
	_n=${2:-100}
	while [ ! -e "$1" ] && [ "$_n" -gt 0 ]; do sleep 0.1; _n=$((_n - 1)); done
	[ -e "$1" ]
}
