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
if ! [ -c /dev/fuse ] || ! [ -r /dev/fuse ] || ! [ -w /dev/fuse ]; then
	skip_all "/dev/fuse is not usable by $(id -un)"
fi

# Two mounts: short reads reach io_uring/AIO callers as short counts only
# with FUSE's async direct I/O, short writes only without it (faultfs.c).
MNT=$TESTTMP/mnt
MNT_SYNC=$TESTTMP/mnt-sync
pids=()

cleanup() {
	local m p
	for m in "$MNT" "$MNT_SYNC"; do
		if mountpoint -q "$m" 2>/dev/null; then
			fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
		fi
	done
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}
trap cleanup EXIT

mount_faultfs() {	# mountpoint backing [faultfs options]
	local mnt=$1 back=$2 pid
	shift 2
	mkdir -p "$mnt"
	truncate -s 4M "$back"
	"$FAULTFS" "$@" "$back" "$mnt" 2>>"$TESTTMP/faultfs.log" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 50); do
		[ -e "$mnt/ctl" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	reason=$(head -c 200 "$TESTTMP/faultfs.log" | tr '\n' ' ')
	skip_all "faultfs did not mount: ${reason:-no message}"
}
mount_faultfs "$MNT" "$TESTTMP/backing.img"
mount_faultfs "$MNT_SYNC" "$TESTTMP/backing-sync.img" --sync-dio

status=0
run_check() {	# binary mountpoint label engine direct phases
	local bin=$1 mnt=$2 label=$3 engine=$4 direct=$5 phases=$6 st
	timeout -k 5 120 "$bin" "$mnt" "$engine" "$direct" "$phases" |
		sed -E "s/^(ok|not ok|skip) - /\\1 - $label/"
	st=${PIPESTATUS[0]}
	case $st in
	0) ;;
	1) status=1 ;;
	*) echo "not ok - $label$engine direct=$direct: fault-check died (exit $st)"; status=1 ;;
	esac
}

ALL=eio,shortread,eagain,nodirect,nofallocate
for cfg in "uring off" "uring auto" "aio auto" "threads off" "sync off"; do
	read -r engine direct <<<"$cfg"
	run_check "$CHECK" "$MNT" "" "$engine" "$direct" "$ALL"
	run_check "$CHECK" "$MNT_SYNC" "sync-dio " "$engine" "$direct" shortwrite
done
if [ -x "$CHECK_SAN" ]; then
	# The same under ASan/UBSan, for the backends with the most state.
	run_check "$CHECK_SAN" "$MNT" "asan " uring auto "$ALL"
	run_check "$CHECK_SAN" "$MNT_SYNC" "asan sync-dio " uring auto shortwrite
	run_check "$CHECK_SAN" "$MNT" "asan " threads off "$ALL"
fi
exit $status
