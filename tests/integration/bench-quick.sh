#!/bin/bash
# SPDX-License-Identifier: MIT
# bench/compare --quick: the benchmark harness runs end to end in seconds and
# writes a well-formed report (Markdown table with rows, JSON that parses
# and has every target accounted for, CPU per I/O for every NBD job, PNGs,
# no absolute path of the tree, a name of its own beside a report of the
# same day), leaves no server process and
# no loop device behind.  It asserts no speeds: the figures of a smoke run
# on a busy machine mean nothing.
set -u
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
TESTTMP=${TESTTMP:-$(mktemp -d /tmp/aioloop-t.XXXXXX)}
out=$TESTTMP/bench-out
img=$TESTTMP/bench.img

if ! command -v fio >/dev/null; then
	echo "skip - bench-quick: fio not installed"
	exit 77
fi
if ! command -v python3 >/dev/null; then
	echo "skip - bench-quick: python3 not installed"
	exit 77
fi

cleanup() {
	# Anything the harness left behind is a failure reported below; this
	# only makes sure it does not outlive the test.
	local p
	for p in $(pgrep -f -- "$TESTTMP" 2>/dev/null); do
		[ "$p" != $$ ] && kill "$p" 2>/dev/null
	done
	if command -v losetup >/dev/null && [ -f "$img" ]; then
		losetup -j "$img" -O NAME -n 2>/dev/null | while read -r dev; do
			losetup -d "$dev"
		done
	fi
}
trap cleanup EXIT

TMPDIR=$TESTTMP timeout -k 10 300 "$SRCDIR/bench/compare" --quick --out "$out" --file "$img" \
	>"$TESTTMP/compare.out" 2>"$TESTTMP/compare.err"
st=$?
if [ $st = 0 ]; then
	echo "ok - bench-quick: bench/compare --quick exits 0"
else
	echo "not ok - bench-quick: bench/compare --quick exits $st"
	tail -n 20 "$TESTTMP/compare.err" | sed 's/^/# /'
fi

md=$(find "$out" -maxdepth 1 -name '*.md' | head -n1)
json=$(find "$out" -maxdepth 1 -name '*.json' | head -n1)
png=$(find "$out" -maxdepth 1 -name '*.png' ! -name '*-cpu.png' | head -n1)

if [ -n "$json" ] && python3 - "$json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["targets"], "no targets"
ran = 0
for name, t in r["targets"].items():
    # every target either ran something or says why not
    if t.get("skipped"):
        assert t["skipped"].strip(), name + ": skipped without a reason"
        continue
    for wl, res in t["results"].items():
        for k in ("iops", "mib_s", "p50_us", "p99_us"):
            assert isinstance(res[k], (int, float)) and res[k] >= 0, (name, wl, k)
        if t["kind"] in ("nbd", "bench"):
            v = res["server_cpu_us_per_io"]
            assert isinstance(v, (int, float)) and v >= 0, (name, wl, "cpu/io")
        if t["kind"] == "nbd":
            assert res["server_idle_rss_mib"] > 0, (name, wl, "idle rss")
        ran += 1
assert ran > 0, "no job ran"
assert "raw" in r["targets"] and r["targets"]["raw"]["results"], "raw file did not run"
assert len(r["checks"]) == 12, "expected 12 goal checks"
for c in r["checks"]:
    assert c["status"] in ("MET", "MISSED", "NOT MEASURED"), c
for k in ("cpu", "cores", "kernel", "fs", "versions"):
    assert k in r["machine"], k
EOF
then
	echo "ok - bench-quick: JSON report parses and accounts for every target"
else
	echo "not ok - bench-quick: JSON report missing or malformed ($json)"
fi

if [ -n "$md" ] && grep -q '^| raw | [0-9]' "$md" &&
	[ "$(grep -c '^target: .*: \(MET\|MISSED\|NOT MEASURED\)' "$md")" = 12 ] &&
	grep -q '^## Machine' "$md" && grep -q '^## Method' "$md" &&
	grep -q '^## CPU per I/O' "$md" && grep -q '^## Memory' "$md" &&
	grep -q '^## Noise' "$md"; then
	echo "ok - bench-quick: Markdown report has table rows, goal lines, machine, method, CPU, memory, noise"
else
	echo "not ok - bench-quick: Markdown report missing or without rows ($md)"
fi

# png_check FILE OK-TEXT NAME: FILE is a PNG (skipped without gnuplot).
png_check() {
	if [ -n "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
		echo "ok - bench-quick: $2"
	elif ! command -v gnuplot >/dev/null; then
		echo "skip - bench-quick: $3: gnuplot not installed"
	else
		echo "not ok - bench-quick: $3 missing or not a PNG ($1)"
	fi
}
png_check "$png" "PNG plot written" "PNG plot"
png_check "$(find "$out" -maxdepth 1 -name '*-cpu.png' | head -n1)" \
	"IOPS against CPU per I/O plot written" "CPU plot"

if [ -n "$md" ] && ! grep -qF "$SRCDIR/" "$md" "$json"; then
	echo "ok - bench-quick: the report names no absolute path of the tree"
else
	echo "not ok - bench-quick: the report names absolute paths of the tree: $(grep -ohF "$SRCDIR/" "$md" "$json" | head -n1)"
fi

# A second report of the same name on the same day goes beside the first.
stem=$(basename "${md%.md}")
if [ -n "$md" ] && python3 - "$SRCDIR/bench/compare" "$out" "$stem" <<'EOF'
import importlib.machinery, importlib.util, sys
loader = importlib.machinery.SourceFileLoader("compare", sys.argv[1])
spec = importlib.util.spec_from_loader("compare", loader)
m = importlib.util.module_from_spec(spec)
loader.exec_module(m)
out, stem = sys.argv[2], sys.argv[3]
assert m.free_stem(out, stem) == stem + "-2", m.free_stem(out, stem)
assert m.free_stem(out, stem + "-other") == stem + "-other"
EOF
then
	echo "ok - bench-quick: a second run the same day gets its own report name (-2)"
else
	echo "not ok - bench-quick: a second run the same day would overwrite $stem"
fi

if grep -q '^\[ *1/[0-9]*\]' "$TESTTMP/compare.err"; then
	echo "ok - bench-quick: progress lines on stderr"
else
	echo "not ok - bench-quick: no progress lines on stderr"
fi

left=$(pgrep -f -- "$TESTTMP" 2>/dev/null | grep -vx $$ || true)
loops=""
command -v losetup >/dev/null && [ -f "$img" ] && loops=$(losetup -j "$img" -O NAME -n 2>/dev/null)
if [ -z "$left" ] && [ -z "$loops" ]; then
	echo "ok - bench-quick: no server process or loop device left behind"
else
	echo "not ok - bench-quick: left behind: processes [$left] loop devices [$loops]"
fi
