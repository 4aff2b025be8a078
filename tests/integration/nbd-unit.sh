#!/bin/bash
# SPDX-License-Identifier: MIT
# Run the NBD frontend's cmocka unit tests (tests/nbd/test-*) from the
# normal and the sanitizer builds, one result per test case.
. "$(dirname "$0")/../nbd/lib.sh"
ran=0
for b in "$BUILDDIR" "$SRCDIR/build-san"; do
	for t in "$b"/tests/nbd/test-*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		ran=1
		tag=$(basename "$b")/$(basename "$t")
		out=$("$t" 2>&1); st=$?
		while read -r line; do
			case $line in
			"[       OK ] "*) ok "$tag: ${line#*] }" ;;
			"[  FAILED  ] "[a-z]*) notok "$tag: ${line#*] }" ;;
			esac
		done <<<"$out"
		[ $st = 0 ] || { notok "$tag exited $st"; echo "$out" | tail -20; }
	done
done
[ $ran = 1 ] || skip "nbd unit tests: not built (cmocka missing?)"
nbd_finish
