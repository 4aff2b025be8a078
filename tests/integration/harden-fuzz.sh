#!/bin/bash
# SPDX-License-Identifier: MIT
# The libFuzzer harnesses, briefly: build them (clang, build-fuzz/), replay
# every saved regression input (fuzz/regress/TARGET/*) and the seed corpus,
# then fuzz each target (handshake, transmission, transmission over TLS,
# the protocol core alone) for FUZZ_SECONDS (default 20) from the seeds.
# A crash, sanitizer report or hang fails the test and leaves the input in
# build-fuzz/artifacts/TARGET/.
set -u
cd "$SRCDIR"
secs=${FUZZ_SECONDS:-20}
if ! command -v clang >/dev/null; then
	echo "skip - fuzzing: clang is not installed"; exit 0
fi
if ! out=$(fuzz/run build 2>&1); then
	echo "$out" | tail -n 30
	echo "not ok - fuzz harnesses build with clang"; exit 1
fi
echo "ok - fuzz harnesses build with clang (-fsanitize=fuzzer,address,undefined)"
rc=0
work=${TESTTMP:-$(mktemp -d)}
for t in handshake transmission tls core; do
	seeds=$t
	[ $t = tls ] && seeds=transmission	# same input format, sent over TLS
	inputs=(fuzz/corpus/"$seeds"/*)
	n=${#inputs[@]}
	if [ -d fuzz/regress/"$t" ] && compgen -G "fuzz/regress/$t/*" >/dev/null; then
		inputs+=(fuzz/regress/"$t"/*)
	fi
	if timeout 300 fuzz/run replay "$t" "${inputs[@]}" >"$work/replay-$t.log" 2>&1; then
		echo "ok - $t: ${#inputs[@]} saved inputs replay cleanly ($n seeds, $(( ${#inputs[@]} - n )) regressions)"
	else
		tail -n 30 "$work/replay-$t.log"
		echo "not ok - $t: a saved input crashes the server"; rc=1
	fi
	# A fresh corpus directory each run keeps the time bounded and the run
	# independent of earlier ones.
	rm -rf build-fuzz/corpus/"$t"
	if timeout $((secs + 120)) fuzz/run "$t" "$secs" >"$work/fuzz-$t.log" 2>&1; then
		stats=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$work/fuzz-$t.log" | tail -n1 |
			grep -oE 'cov: [0-9]+ ft: [0-9]+' || true)
		runs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$work/fuzz-$t.log" | grep -oE '[0-9]+$')
		echo "ok - $t: ${secs}s of fuzzing, ${runs:-?} executions, ${stats:-no stats}, no crash"
	else
		grep -E 'ERROR|SUMMARY|Test unit written|#0 |#1 |#2 |#3 ' "$work/fuzz-$t.log" | head -n 30
		echo "not ok - $t: the fuzzer found a crash (see build-fuzz/artifacts/$t/)"; rc=1
	fi
done
exit $rc
