#!/bin/bash
# SPDX-License-Identifier: MIT
# Request statistics of a running server, under fio load (fio's nbd engine
# against 'aioloop serve -U'): 'aioloop stats --json' shows requests and a
# p99 latency for reads and writes, per connection too, and counts what fio
# did; the --metrics endpoint, scraped with curl, is accepted by the
# Prometheus text parser and the OpenMetrics parser (python3-prometheus-client)
# with the same counts; --watch draws iostat-like lines; 'aioloop list' shows
# the export; the control socket is root's only.
. "$(dirname "$0")/../nbd/lib.sh"
T=$TESTTMP
A=$AIOLOOP

for t in fio curl; do
	if ! command -v $t >/dev/null; then
		skip "stats-metrics: $t is not installed"
		exit 0
	fi
done
if ! fio --enghelp=nbd >/dev/null 2>&1; then
	skip "stats-metrics: this fio has no nbd engine"
	exit 0
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
truncate -s 256M "$T/disk.img"
ctl=$T/serve.ctl
start_server "$A" "$T/serve.log" "$T/s.sock" -t 2 -e vm1 --control "$ctl" \
	--metrics "127.0.0.1:$port" "$T/disk.img" || { notok "server starts"; exit 1; }
check "control socket is mode 0600" test "$(stat -c %a "$ctl")" = 600

# Load: random 4k reads and writes, two jobs (two connections).
fio --name=load --ioengine=nbd --uri="nbd+unix:///vm1?socket=$T/s.sock" --rw=randrw \
	--bs=4k --iodepth=8 --numjobs=2 --size=64M --time_based --runtime=4 \
	--output-format=json --output="$T/fio.json" >/dev/null 2>"$T/fio.err" &
fio_pid=$!
sleep 2
"$A" stats --control "$ctl" --json >"$T/mid.json" 2>"$T/stats.err"
"$A" stats --control "$ctl" vm1 >"$T/mid.txt" 2>>"$T/stats.err"
"$A" stats --control "$ctl" --watch 0.5 --count 2 >"$T/watch.txt" 2>>"$T/stats.err"
"$A" list --control "$ctl" >"$T/list.txt" 2>&1
"$A" list --control "$ctl" --json >"$T/list.json" 2>&1
wait $fio_pid
check "fio ran ($(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"]; print(sum(x["read"]["total_ios"] for x in j), "reads", sum(x["write"]["total_ios"] for x in j), "writes")' "$T/fio.json" 2>&1))" \
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/fio.json"

# Under load: non-zero requests and p99 for reads and writes, connections.
python3 - "$T/mid.json" >"$T/mid.check" 2>&1 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
e = [x for p in d["processes"] for x in p["exports"] if x["name"] == "vm1"][0]
for op in ("read", "write"):
    t = e["total"][op]
    assert t["ops"] > 0 and t["bytes"] == 4096 * t["ops"], (op, t)
    assert t["latency_us"]["p99"] > 0 and t["latency_us"]["p99"] <= t["latency_us"]["max"], t
    assert t["latency_us"]["p50"] <= t["latency_us"]["p99"], t
    print(f"{op}: {t['ops']} ops, p50 {t['latency_us']['p50']} us, p99 {t['latency_us']['p99']} us")
assert len(e["connections"]) == 2, e["connections"]
assert all(c["total"]["read"]["ops"] > 0 for c in e["connections"])
PY
check "stats --json under fio load: reads and writes with p99, two connections ($(tr '\n' ';' <"$T/mid.check"))" \
	grep -q "^write: " "$T/mid.check"
check "stats table names the export and its percentiles" grep -q "P99_US" "$T/mid.txt"
check "stats --watch draws a line per interval" \
	test "$(grep -c '^vm1 ' "$T/watch.txt")" = 2
check "list shows the served export" grep -q "^vm1 .*disk.img" "$T/list.txt"
check "list --json has it too" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert [e for e in d["aioexports"] if e["export"] == "vm1"], d' "$T/list.json"

# After the load: fio's counts, the stats and the metrics agree.
"$A" stats --control "$ctl" --json >"$T/end.json"
curl -sf "http://127.0.0.1:$port/metrics" -o "$T/metrics.txt"
curl -sf -H 'Accept: application/openmetrics-text; version=1.0.0' \
	"http://127.0.0.1:$port/metrics" -D "$T/om.hdr" -o "$T/metrics.om"
check "curl scrapes /metrics" grep -q '^aioloop_requests_total{export="vm1",op="read"}' "$T/metrics.txt"
check "OpenMetrics asked, OpenMetrics served" grep -qi '^content-type: application/openmetrics-text' "$T/om.hdr"
# The python that has Debian's prometheus_client (another may come first).
PROM_PY=python3
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import prometheus_client' 2>/dev/null; then PROM_PY=$p; break; fi
done
"$PROM_PY" - "$T/end.json" "$T/fio.json" "$T/metrics.txt" "$T/metrics.om" >"$T/agree.log" 2>&1 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
e = [x for p in d["processes"] for x in p["exports"] if x["name"] == "vm1"][0]
jobs = json.load(open(sys.argv[2]))["jobs"]
for op in ("read", "write"):
    fio = sum(j[op]["total_ios"] for j in jobs)
    ours = e["total"][op]["ops"]
    # fio counts what completed in its run; requests still in flight when it
    # stopped complete on the server too
    assert fio <= ours <= fio + 2 * 8, (op, fio, ours)
    print(f"{op}: fio {fio}, stats {ours}")
try:
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
except ImportError:
    print("SKIP-PARSER")
    sys.exit(0)
for path, parse in ((sys.argv[3], text_string_to_metric_families), (sys.argv[4], om_families)):
    fams = {f.name: f for f in parse(open(path).read())}
    req = {s.labels["op"]: s.value for s in fams["aioloop_requests"].samples
           if s.name == "aioloop_requests_total" and s.labels["export"] == "vm1"}
    hist = fams["aioloop_request_duration_seconds"]
    count = {s.labels["op"]: s.value for s in hist.samples
             if s.name.endswith("_count") and s.labels["export"] == "vm1"}
    inf = {s.labels["op"]: s.value for s in hist.samples
           if s.name.endswith("_bucket") and s.labels["le"] in ("+Inf", "inf")
           and s.labels["export"] == "vm1"}
    for op in ("read", "write"):
        assert req[op] == e["total"][op]["ops"] == count[op] == inf[op], (path, op, req, count, inf)
    print(f"{path.rsplit('/', 1)[1]}: parsed, {int(req['read'])} reads, {int(req['write'])} writes")
PY
st=$?
if grep -q SKIP-PARSER "$T/agree.log"; then
	skip "metrics parsed: python3-prometheus-client is not installed"
fi
check "stats count what fio did; both metric parsers accept the text, same counts ($(tr '\n' ';' <"$T/agree.log"))" test $st = 0
[ $st = 0 ] || cat "$T/agree.log"

stop_server >/dev/null
check "the control socket is removed on exit" test ! -e "$ctl"

# --metrics on a Unix socket; anything but loopback is refused.
start_server "$A" "$T/serve2.log" "$T/s2.sock" -t 1 --control none \
	--metrics "unix:$T/m.sock" "$T/disk.img" || notok "server with unix metrics starts"
check "metrics over a Unix socket" sh -c "curl -sf --unix-socket '$T/m.sock' http://x/metrics | grep -q '^# TYPE aioloop_request_duration_seconds histogram'"
check "a path other than /metrics is 404" test "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$T/m.sock" http://x/other)" = 404
stop_server >/dev/null
"$A" serve --metrics 0.0.0.0:9 "$T/disk.img" 2>"$T/bad.err"; st=$?
check "--metrics on a non-loopback address is refused (exit $st)" \
	sh -c "test $st = 2 && grep -q 'only a loopback address' '$T/bad.err'"
exit $NBD_FAILED
