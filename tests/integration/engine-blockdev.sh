#!/bin/bash
# SPDX-License-Identifier: MIT
# The engine on a block device: attaches a scratch file as a loop device
# and runs test-engine's bdev_* cases (every backend) on it, where the
# engine takes the block device paths (BLKGETSIZE64, block ioctls for
# discard and zeroing).  Needs root and a free loop device; skips otherwise.
set -u
: "${SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${BUILDDIR:=$SRCDIR/build}"
: "${TESTTMP:=$(mktemp -d /tmp/aioloop-t.XXXXXX)}"

skip_all() {
	echo "skip - engine on a block device: $1"
	exit 0
}
[ "$(id -u)" = 0 ] || skip_all "needs root for losetup"
command -v losetup >/dev/null || skip_all "losetup not installed"

dev=
cleanup() {
	[ -n "$dev" ] && losetup -d "$dev" 2>/dev/null
}
trap cleanup EXIT

truncate -s 16M "$TESTTMP/bdev.img"
dev=$(losetup --direct-io=on -f --show "$TESTTMP/bdev.img" 2>"$TESTTMP/losetup.err") ||
	skip_all "losetup failed: $(head -c 200 "$TESTTMP/losetup.err")"

status=0
for build in "$BUILDDIR" "$SRCDIR/build-san"; do
	bin=$build/tests/unit/test-engine
	[ -x "$bin" ] || continue
	label=
	[ "$build" = "$BUILDDIR" ] || label="asan "
	AIOLOOP_TEST_BLOCKDEV=$dev timeout -k 5 300 "$bin" '*bdev*' >"$TESTTMP/out" 2>&1
	st=$?
	# cmocka's per-case lines as results.
	sed -nE "s/^\[       OK \] (.*)$/ok - $label\1/p; s/^\[  FAILED  \] ([a-z].*)$/not ok - $label\1/p" \
		"$TESTTMP/out" | sort -u
	if [ $st != 0 ]; then
		status=1
		grep -E "ERROR|error|FAILED" "$TESTTMP/out" | head -n 20 | sed 's/^/# /'
		grep -q '^\[  FAILED  \] [a-z]' "$TESTTMP/out" || echo "not ok - ${label}test-engine on $dev exited $st"
	fi
done
exit $status
