#!/bin/bash
# SPDX-License-Identifier: MIT
# aioloop bench: a 1-second run per engine on a small file gives JSON that
# parses with IOPS > 0; text output, the demo image (made and removed), and
# bad input (one-line error, exit 2 for usage and 1 for runtime errors,
# nothing written, no demo image left behind).
set -u
: "${SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${AIOLOOP:=$SRCDIR/build/aioloop}"
: "${TESTTMP:=$(mktemp -d /tmp/aioloop-t.XXXXXX)}"
status=0

ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; status=1; }

if ! [ -x "$AIOLOOP" ]; then
	echo "not ok - bench: $AIOLOOP is not built"
	exit 1
fi
if ! command -v python3 >/dev/null; then
	echo "skip - bench: python3 is needed to parse the JSON"
	exit 0
fi

F=$TESTTMP/bench.img
head -c 32M /dev/urandom >"$F"

# json_check NAME FILE: the JSON parses and has ios/iops > 0.
json_check() {
	python3 - "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("engine", "rw", "bs", "qd", "direct", "seconds", "ios", "iops", "mib_s",
          "lat_p50_us", "lat_p99_us", "cpu_us_per_io"):
    assert k in d, "missing " + k
assert d["ios"] > 0 and d["iops"] > 0, "no I/O done"
assert 0 < d["lat_p50_us"] <= d["lat_p99_us"], "percentiles out of order"
print("%s %s: %.0f IOPS, p50 %.1f us, p99 %.1f us, %.2f us CPU/IO" % (
    d["engine"], d["rw"], d["iops"], d["lat_p50_us"], d["lat_p99_us"], d["cpu_us_per_io"]))
PY
}

for e in uring aio threads sync; do
	out=$TESTTMP/$e.json
	if timeout 30 "$AIOLOOP" bench --engine=$e --seconds=1 --qd=8 --json "$F" \
		>"$out" 2>"$TESTTMP/$e.err" && line=$(json_check "$e" "$out" 2>&1); then
		echo "# $line"
		ok "bench --engine=$e randread: JSON parses, IOPS > 0"
	else
		notok "bench --engine=$e randread: $(tail -n 3 "$TESTTMP/$e.err" "$out" | tr '\n' ' ')"
	fi
done

for rw in randwrite read write; do
	out=$TESTTMP/uring-$rw.json
	if timeout 30 "$AIOLOOP" bench --rw=$rw --bs=64k --seconds=1 --json "$F" \
		>"$out" 2>"$TESTTMP/$rw.err" && line=$(json_check uring "$out" 2>&1); then
		echo "# $line"
		ok "bench --rw=$rw: JSON parses, IOPS > 0"
	else
		notok "bench --rw=$rw: $(tail -n 3 "$TESTTMP/$rw.err" "$out" | tr '\n' ' ')"
	fi
done
if grep -q "overwrites" "$TESTTMP/randwrite.err"; then
	ok "bench --rw=randwrite on a FILE warns that it overwrites it"
else
	notok "bench --rw=randwrite on a FILE gave no warning"
fi

if out=$(timeout 30 "$AIOLOOP" bench --engine=threads --bs=1000 --qd=3 --seconds=0.5 "$F" 2>&1) &&
	grep -q "IOPS" <<<"$out" && grep -q "p99" <<<"$out"; then
	ok "bench text output with an unaligned --bs"
else
	notok "bench text output: $out"
fi

# The demo image: made under $TMPDIR, said where, removed at exit.
mkdir -p "$TESTTMP/demo"
err=$(TMPDIR=$TESTTMP/demo timeout 60 "$AIOLOOP" bench --size=16M --seconds=0.5 --json \
	2>&1 >"$TESTTMP/demo.json")
st=$?
if [ $st = 0 ] && json_check demo "$TESTTMP/demo.json" >/dev/null 2>&1 &&
	grep -q "$TESTTMP/demo/" <<<"$err" && [ -z "$(ls -A "$TESTTMP/demo")" ]; then
	ok "bench without FILE makes a demo image, says where, removes it"
else
	notok "bench demo image: exit $st, '$err', left: $(ls -A "$TESTTMP/demo")"
fi

# Bad input.  expect_fail STATUS WHAT ARGS...: exit STATUS, one line on
# stderr, nothing on stdout, $F unchanged, no demo image left.
sum=$(md5sum <"$F")
expect_fail() {
	local want=$1 what=$2 st lines
	shift 2
	TMPDIR=$TESTTMP/demo timeout 30 "$AIOLOOP" bench "$@" >"$TESTTMP/bad.out" 2>"$TESTTMP/bad.err"
	st=$?
	lines=$(wc -l <"$TESTTMP/bad.err")
	if [ $st = "$want" ] && [ "$lines" = 1 ] && ! [ -s "$TESTTMP/bad.out" ] &&
		[ "$(md5sum <"$F")" = "$sum" ] && [ -z "$(ls -A "$TESTTMP/demo")" ]; then
		echo "# $(cat "$TESTTMP/bad.err")"
		ok "bench $what: one-line error, exit $want, nothing written"
	else
		notok "bench $what: exit $st (want $want), $lines lines: $(head -c 300 "$TESTTMP/bad.err")"
	fi
}
expect_fail 1 "on a missing file" --rw=randwrite "$TESTTMP/no-such-file"
[ -e "$TESTTMP/no-such-file" ] && notok "bench created the missing file"
expect_fail 1 "on a directory" --rw=randwrite "$TESTTMP"
expect_fail 2 "with an unknown engine" --engine=bogus --rw=randwrite "$F"
expect_fail 2 "with a bad --size" --size=12X --rw=randwrite "$F"
expect_fail 2 "with --bs=0" --bs=0 --rw=randwrite "$F"
expect_fail 2 "with a bad --bs" --bs=4q --rw=randwrite "$F"
expect_fail 2 "with --qd=0" --qd=0 --rw=randwrite "$F"
expect_fail 2 "with a bad --rw" --rw=trim "$F"
expect_fail 2 "with a bad --seconds" --seconds=-1 "$F"
expect_fail 2 "with a bad --direct" --direct=maybe "$F"
expect_fail 2 "with an unknown option" --frobnicate "$F"
expect_fail 2 "with two files" "$F" "$F"
expect_fail 2 "with a bad --size and no file" --size=1Q
expect_fail 2 "with --qd too large" --qd=5000 "$F"
expect_fail 2 "with --bs times --qd over 256M" --bs=16M --qd=32 "$F"
if [ -d /dev/shm ]; then
	head -c 1M /dev/zero >/dev/shm/aioloop-bench-test.$$
	expect_fail 1 "with --direct=on on tmpfs" --direct=on /dev/shm/aioloop-bench-test.$$
	rm -f /dev/shm/aioloop-bench-test.$$
fi
expect_fail 1 "with --bs larger than the file" --bs=64M --qd=1 --rw=randwrite "$F"
expect_fail 1 "with --size larger than the file" --size=1G --rw=randwrite "$F"

if out=$("$AIOLOOP" bench --help 2>&1) && grep -q "^Usage: aioloop bench" <<<"$out" &&
	grep -q -- "--qd" <<<"$out"; then
	ok "bench --help"
else
	notok "bench --help: $out"
fi
exit $status
