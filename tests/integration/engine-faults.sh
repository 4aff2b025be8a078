#!/bin/bash
# SPDX-License-Identifier: MIT
# The engine under injected faults: mounts faultfs (tests/fuse/faultfs.c)
# over a scratch file and runs tests/fuse/fault-check against it with every
# backend.  Each backend must report EIO to done() unchanged, complete short
# reads and writes by resubmitting (data checked), fail a read that hits a
# premature end of file, fall back to buffered when O_DIRECT is refused and
# refuse fast-only zeroing when the backing has no fallocate.
# Needs /dev/fuse and fusermount3 (root or a fuse group); skips otherwise.
set -u
: "${BUILDDIR:=$(cd "$(dirname "$0")/../.." && pwd)/build}"
: "${SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${TESTTMP:=$(mktemp -d /tmp/aioloop-t.XXXXXX)}"
FAULTFS=$BUILDDIR/tests/fuse/faultfs
CHECK=$BUILDDIR/tests/fuse/fault-check
CHECK_SAN=$SRCDIR/build-san/tests/fuse/fault-check

skip_all() {
	echo "skip - engine faults: $1"
	exit 0
}

[ -x "$FAULTFS" ] || skip_all "faultfs not built (libfuse3 development files missing)"
[ -x "$CHECK" ] || skip_all "fault-check not built"
command -v fusermount3 >/dev/null || skip_all "fusermount3 not installed"
[ -c /dev/fuse ] && [ -r /dev/fuse ] && [ -w /dev/fuse ] || skip_all "/dev/fuse is not usable by $(id -un)"

MNT=$TESTTMP/mnt
BACK=$TESTTMP/backing.img
mkdir -p "$MNT"
truncate -s 4M "$BACK"
fs_pid=

cleanup() {
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null
	fi
	if [ -n "$fs_pid" ]; then
		kill "$fs_pid" 2>/dev/null
		wait "$fs_pid" 2>/dev/null
	fi
}
trap cleanup EXIT

"$FAULTFS" "$BACK" "$MNT" 2>"$TESTTMP/faultfs.log" &
fs_pid=$!
for _ in $(seq 50); do
	[ -e "$MNT/ctl" ] && break
	kill -0 "$fs_pid" 2>/dev/null || break
	sleep 0.1
done
if ! [ -e "$MNT/ctl" ]; then
	reason=$(head -c 200 "$TESTTMP/faultfs.log" | tr '\n' ' ')
	skip_all "faultfs did not mount: ${reason:-no message}"
fi

status=0
run_check() {	# binary engine direct [label]
	local bin=$1 engine=$2 direct=$3 label=${4:-} st
	timeout -k 5 120 "$bin" "$MNT" "$engine" "$direct" |
		sed -E "s/^(ok|not ok|skip) - /\1 - $label/"
	st=${PIPESTATUS[0]}
	case $st in
	0) ;;
	1) status=1 ;;
	*) echo "not ok - $engine direct=$direct: fault-check died (exit $st)"; status=1 ;;
	esac
}

run_check "$CHECK" uring off
run_check "$CHECK" uring auto
run_check "$CHECK" aio auto
run_check "$CHECK" threads off
run_check "$CHECK" sync off
if [ -x "$CHECK_SAN" ]; then
	# The same under ASan/UBSan, for the backends with the most state.
	run_check "$CHECK_SAN" uring auto "asan "
	run_check "$CHECK_SAN" threads off "asan "
fi
exit $status
