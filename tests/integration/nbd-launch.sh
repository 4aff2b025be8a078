#!/bin/bash
# SPDX-License-Identifier: MIT
# The ways 'aioloop serve' is started: -s (one client on stdin/stdout, as
# libnbd's "[ CMD ]" and connect_command do), systemd socket activation
# (libnbd's activation and systemd-socket-activate), TCP with -p/-b, a pid
# file, --max-connections, the demo image, and the command line's errors.
. "$(dirname "$0")/../nbd/lib.sh"
command -v nbdinfo >/dev/null || { skip "launch tests: nbdinfo missing"; exit 0; }
img=$TESTTMP/l.img log=$TESTTMP/l.log
truncate -s 32M "$img"

check "--help" bash -c "'$AIOLOOP' serve --help | grep -q -- '--max-inflight'"
check "--version" bash -c "'$AIOLOOP' serve --version | grep -q aioloop"
"$AIOLOOP" serve --bogus "$img" >/dev/null 2>&1; st=$?
check "unknown option: exit 2 (got $st)" test $st = 2
"$AIOLOOP" serve -U "$TESTTMP/x.sock" "$TESTTMP/does-not-exist" 2>"$log"; st=$?
check "missing file: exit 1 with a message (got $st)" bash -c "[ $st = 1 ] && [ -s '$log' ]"
"$AIOLOOP" serve -t 4 --max-inflight 100M -U "$TESTTMP/x.sock" "$img" 2>"$log"; st=$?
check "--max-inflight too small for -t: refused (got $st)" \
	bash -c "[ $st = 1 ] && grep -q 'too small' '$log'"

for bin in $(nbd_binaries); do
	tag=$(basename "$(dirname "$bin")")
	check "$tag: -s under nbdinfo [ ... ]" \
		bash -c "[ \$(timeout 30 nbdinfo --size -- [ '$bin' serve -s '$img' ] 2>>'$log') = 33554432 ]"
	check "$tag: libnbd socket activation (no -s)" \
		bash -c "[ \$(timeout 30 nbdinfo --size -- [ '$bin' serve -t 1 '$img' ] 2>>'$log') = 33554432 ]"
	if [ -n "$NBD_PY" ]; then
		check "$tag: -s with connect_command: write and read back" timeout 30 "$NBD_PY" -c "
import nbd
h = nbd.NBD()
h.connect_command(['$bin', 'serve', '-s', '-t', '1', '$img'])
h.pwrite(b'stdio!' * 100, 4096)
assert h.pread(600, 4096) == b'stdio!' * 100
h.shutdown()
"
	fi
	check "$tag: -s: no sanitizer report" sanitizer_clean "$log"
done

if command -v systemd-socket-activate >/dev/null; then
	sock=$TESTTMP/sa.sock
	systemd-socket-activate -l "$sock" "$AIOLOOP" serve -t 1 "$img" 2>"$log" &
	sa=$!; NBD_PIDS="$NBD_PIDS $sa"
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
	check "systemd-socket-activate: first client" \
		bash -c "[ \$(nbdinfo --size 'nbd+unix:///?socket=$sock') = 33554432 ]"
	check "systemd-socket-activate: second client on the same server" \
		bash -c "[ \$(nbdinfo --size 'nbd+unix:///?socket=$sock') = 33554432 ]"
	kill -TERM $sa; wait $sa; st=$?
	check "systemd-socket-activate: SIGTERM, exit 0 (got $st)" test $st = 0
else
	skip "systemd-socket-activate: not installed (libnbd's activation is tested above)"
fi

# TCP on a free port, with a pid file.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$AIOLOOP" serve -t 1 -b 127.0.0.1 -p "$port" --pidfile "$TESTTMP/pid" "$img" 2>"$log" &
srv=$!; NBD_PIDS="$NBD_PIDS $srv"
for _ in $(seq 50); do [ -s "$TESTTMP/pid" ] && break; sleep 0.1; done
check "TCP: pid file holds the server's pid" bash -c "[ \"\$(cat '$TESTTMP/pid')\" = $srv ]"
check "TCP: nbdinfo nbd://127.0.0.1:$port" \
	bash -c "[ \$(nbdinfo --size nbd://127.0.0.1:$port) = 33554432 ]"
kill -TERM $srv; wait $srv; st=$?
check "TCP: SIGTERM, exit 0, pid file removed" bash -c "[ $st = 0 ] && [ ! -e '$TESTTMP/pid' ]"

# --fork: the command returns once the server listens; SIGTERM ends it.
sock=$TESTTMP/fork.sock
"$AIOLOOP" serve --fork -t 1 --pidfile "$TESTTMP/fpid" -U "$sock" "$img" 2>"$log"; st=$?
fpid=$(cat "$TESTTMP/fpid" 2>/dev/null)
[ -n "$fpid" ] && NBD_PIDS="$NBD_PIDS $fpid"
check "--fork: returns 0 with the server listening" \
	bash -c "[ $st = 0 ] && [ \$(nbdinfo --size 'nbd+unix:///?socket=$sock') = 33554432 ]"
if [ -n "$fpid" ]; then
	kill -TERM "$fpid"
	for _ in $(seq 100); do [ -e "$sock" ] || [ -e "$TESTTMP/fpid" ] || break; sleep 0.1; done
fi
check "--fork: SIGTERM removes the socket and the pid file" \
	bash -c "[ ! -e '$sock' ] && [ ! -e '$TESTTMP/fpid' ]"

# --max-connections 1: a second client is refused while the first is connected.
sock=$TESTTMP/mc.sock
start_server "$AIOLOOP" "$log" "$sock" -t 1 --max-connections 1 "$img" || notok "server starts"
if [ -n "$NBD_PY" ]; then
	check "--max-connections 1: second client refused, first still served" timeout 30 "$NBD_PY" -c "
import nbd
a = nbd.NBD(); a.connect_uri('nbd+unix:///?socket=$sock')
b = nbd.NBD()
try:
    b.connect_uri('nbd+unix:///?socket=$sock')
    raise SystemExit('second client was accepted')
except nbd.Error:
    pass
assert a.get_size() == 33554432 and len(a.pread(512, 0)) == 512
"
fi
stop_server

# The demo image, made in a directory of the test's own.
export AIOLOOP_DEMO_DIR=$TESTTMP/demo
mkdir -p "$AIOLOOP_DEMO_DIR"
demo=$AIOLOOP_DEMO_DIR/aioloop-demo.img
if [ ! -e "$demo" ]; then
	sock=$TESTTMP/demo.sock
	start_server "$AIOLOOP" "$log" "$sock" -t 1 || notok "demo server starts"
	check "no FILE: serves a 256 MiB demo image" \
		bash -c "[ \$(nbdinfo --size 'nbd+unix:///?socket=$sock') = 268435456 ]"
	check "demo image: recognisable pattern at the start" \
		bash -c "qemu-io -f raw -r 'nbd+unix:///?socket=$sock' -c 'read -v 0 64' | grep -q 'aioloop.demo'"
	check "demo image: the help says how to connect" grep -q "nbdinfo" "$log"
	check "demo image: made where AIOLOOP_DEMO_DIR says" test -f "$demo"
	stop_server
	rm -f "$demo"
	unset AIOLOOP_DEMO_DIR
else
	skip "demo image: $demo exists already (left alone)"
fi
nbd_finish
