#!/bin/bash
# SPDX-License-Identifier: MIT
# The systemd side of aioloop: the installed unit templates pass
# 'systemd-analyze verify' (offline: --root at a scratch install, with the
# host's own units copied beside ours for sysinit.target and friends);
# serve run as a unit runs it (--config, sd_notify READY/STATUS/STOPPING on
# a NOTIFY_SOCKET of ours, the socket activation the .socket unit does,
# through systemd-socket-activate); log lines carry syslog priority prefixes
# exactly when stderr is the journal's stream (JOURNAL_STREAM).
. "$(dirname "$0")/../nbd/lib.sh"
T=$TESTTMP
root=$T/root

if ! command -v systemd-analyze >/dev/null; then
	skip "systemd-units: systemd-analyze is not installed"
	exit 0
fi

# ---- the installed units ----
if meson install -C "$BUILDDIR" --no-rebuild --quiet --destdir "$root" >"$T/install.log" 2>&1; then
	ok "meson install puts the units in place"
else
	notok "meson install"; cat "$T/install.log"
	exit 1
fi
unitdir=$(cd "$root" && find . -name 'aioloop-serve@.service' -printf '%h\n' | head -n1)
unitdir=${unitdir#.}
for u in aioloop-serve@.service aioloop-serve@.socket aioloop-attach@.service; do
	[ -f "$root$unitdir/$u" ] || notok "installed: $u"
done
# ExecStart names the installed binary.
exe=$(sed -n 's/^ExecStart=\([^ ]*\) serve.*/\1/p' "$root$unitdir/aioloop-serve@.service")
check "ExecStart is the installed program ($exe)" test -x "$root$exe"

# Units the templates refer to (sysinit.target, sockets.target, ...).
for d in /lib/systemd/system /usr/lib/systemd/system; do
	[ -d "$d" ] && cp -an "$d/." "$root$unitdir/" 2>/dev/null
done
verify() {	# NAME UNIT...
	local name=$1 out st; shift
	out=$(systemd-analyze verify --man=no --root="$root" "$@" 2>&1); st=$?
	if [ $st = 0 ] && [ -z "$out" ]; then
		ok "$name"
	else
		notok "$name (exit $st)"; echo "$out" | sed 's/^/    /'
	fi
}
verify "systemd-analyze verify: serve, socket and attach instances" \
	aioloop-serve@vm1.service aioloop-serve@vm1.socket aioloop-attach@vm1.service
# ... and it would say so: a unit with a wrong key does not pass.
sed 's/^NoNewPrivileges=yes/NoNewPrivileges=perhaps/' "$root$unitdir/aioloop-serve@.service" \
	>"$root$unitdir/aioloop-broken@.service"
if systemd-analyze verify --man=no --root="$root" aioloop-broken@x.service >/dev/null 2>&1 &&
	[ -z "$(systemd-analyze verify --man=no --root="$root" aioloop-broken@x.service 2>&1)" ]; then
	notok "systemd-analyze verify notices a bad value"
else
	ok "systemd-analyze verify notices a bad value"
fi

# ---- serve as the unit runs it: --config, sd_notify ----
truncate -s 16M "$T/disk.img"
cat >"$T/vm1.conf" <<CONF
# as /etc/aioloop/vm1.conf would be
socket = $T/vm1.sock
export-name = vm1
threads = 1
file = $T/disk.img
CONF
# notify_run OUT CMD...: run CMD with NOTIFY_SOCKET set to a datagram socket
# of ours; once READY=1 came, check the socket answers, SIGTERM it and
# collect what it said until it exits.  OUT gets the messages, one a line.
notify_run() {
	local out=$1; shift
	python3 - "$out" "$@" <<'PY'
import os, signal, socket, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
path = out + ".sock"
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(0.2)
env = dict(os.environ, NOTIFY_SOCKET=path)
p = subprocess.Popen(cmd, env=env, stderr=open(out + ".log", "w"))
msgs, ready, deadline = [], False, time.time() + 20
while time.time() < deadline:
    try:
        m = s.recv(4096).decode()
        msgs.append(m.replace("\n", " | "))
        if "READY=1" in m and not ready:
            ready = True
            time.sleep(0.3)
            p.send_signal(signal.SIGTERM)
    except socket.timeout:
        pass
    if p.poll() is not None:
        break
if p.poll() is None:
    p.kill()
try:
    while True:
        s.settimeout(0.1)
        msgs.append(s.recv(4096).decode().replace("\n", " | "))
except OSError:
    pass
open(out, "w").write("\n".join(msgs) + "\n")
sys.exit(p.wait())
PY
}
notify_run "$T/n1" "$AIOLOOP" serve --config "$T/vm1.conf"; st=$?
check "serve --config exits 0 on SIGTERM under a notify socket (exit $st)" test $st = 0
check "READY=1 with a STATUS naming the export and its socket" \
	grep -q "READY=1 | STATUS=serving export 'vm1' ($T/disk.img) on $T/vm1.sock" "$T/n1"
check "STOPPING=1 on the way out" grep -q "STOPPING=1" "$T/n1"
grep -q . "$T/n1" || cat "$T/n1.log"

# The .socket unit's way: the socket is passed (LISTEN_FDS), not bound.
if command -v systemd-socket-activate >/dev/null; then
	rm -f "$T/act.sock" "$T/vm1.sock"
	systemd-socket-activate -l "$T/act.sock" "$AIOLOOP" serve --config "$T/vm1.conf" \
		2>"$T/act.log" &
	act=$!
	NBD_PIDS="$NBD_PIDS $act"
	for _ in $(seq 50); do [ -S "$T/act.sock" ] && break; sleep 0.1; done
	size=$(nbdinfo --size "nbd+unix:///vm1?socket=$T/act.sock" 2>>"$T/act.log")
	check "socket activation: the passed socket serves the export ($size)" test "$size" = 16777216
	check "socket activation: the configured socket is not bound" test ! -e "$T/vm1.sock"
	kill -TERM "$act" 2>/dev/null
	wait "$act" 2>/dev/null
else
	skip "socket activation: systemd-socket-activate is not installed"
fi

# ---- log lines for the journal ----
sock2=$T/j.sock
"$AIOLOOP" serve -t 1 -U "$sock2" "$T/disk.img" 2>"$T/plain.log" &
pid=$!
NBD_PIDS="$NBD_PIDS $pid"
for _ in $(seq 50); do grep -q "export ''" "$T/plain.log" 2>/dev/null && break; sleep 0.1; done
kill -TERM $pid; wait $pid
check "stderr not the journal: no priority prefix" grep -q "^aioloop: export ''" "$T/plain.log"
: >"$T/journal.log"
js=$(stat -c '%d:%i' "$T/journal.log")
JOURNAL_STREAM=$js "$AIOLOOP" serve -t 1 -U "$sock2" "$T/disk.img" 2>>"$T/journal.log" &
pid=$!
NBD_PIDS="$NBD_PIDS $pid"
for _ in $(seq 50); do grep -q "export ''" "$T/journal.log" 2>/dev/null && break; sleep 0.1; done
kill -TERM $pid; wait $pid
check "stderr is the journal: info lines start with <6>" grep -q "^<6>aioloop: export ''" "$T/journal.log"
JOURNAL_STREAM=$js "$AIOLOOP" serve -t 1 "$T/no-such-file" 2>>"$T/journal.log"
check "stderr is the journal: errors start with <3>" grep -q "^<3>aioloop: " "$T/journal.log"
exit $NBD_FAILED
