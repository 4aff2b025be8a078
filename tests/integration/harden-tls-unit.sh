#!/bin/bash
# SPDX-License-Identifier: MIT
# The TLS layer's unit tests (tests/harden/test-tls.c: nbd/tls.c against a
# GnuTLS client over a socketpair), in the normal and the sanitizer build.
# tests/run-all only collects cmocka programs from build*/tests/unit, so
# this script runs them and reports one line per case.
set -u
: "${BUILDDIR:=$SRCDIR/build}"
rc=0
for b in "$BUILDDIR" "$SRCDIR/build-san"; do
	t=$b/tests/harden/test-tls
	tag=$(basename "$b")
	if [ ! -x "$t" ]; then
		echo "skip - tls unit tests ($tag): $t not built (no GnuTLS or cmocka?)"
		continue
	fi
	out=$(timeout 300 "$t" 2>&1); st=$?
	if [ $st = 77 ]; then
		echo "skip - tls unit tests ($tag): $(echo "$out" | grep -m1 skip)"
		continue
	fi
	n=0
	while read -r name; do
		echo "ok - tls unit ($tag): $name"; n=$((n + 1))
	done < <(echo "$out" | grep -a '^\[       OK \]' | sed 's/.*\] //')
	while read -r name; do
		echo "not ok - tls unit ($tag): $name"; rc=1; n=$((n + 1))
	done < <(echo "$out" | grep -a '^\[  FAILED  \] test_' | sed 's/.*\] //')
	if [ $st != 0 ] || [ $n = 0 ]; then
		echo "not ok - tls unit tests ($tag) exited $st"
		echo "$out" | tail -n 20
		rc=1
	fi
done
exit $rc
