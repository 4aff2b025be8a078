#!/bin/bash
# SPDX-License-Identifier: MIT
# Resource limits of the NBD server:
#  - the handshake deadline drops a client that says nothing and one that
#    trickles bytes (an idle timer alone would keep it), with
#    --handshake-timeout and with the default of 10 s;
#  - --max-connections refuses the client beyond the limit and serves
#    again once others have gone;
#  - 1000 connections that stall (silent, mid-handshake, or mid-payload: a
#    WRITE promising 64 MiB then nothing) keep the server's memory bounded
#    (VmRSS/VmHWM from /proc) while nbdinfo and qemu-io are still served;
#  - a WRITE whose payload stalls is dropped after --payload-timeout;
#  - one connection over --max-conn-inflight waits for its own replies;
#  - option data over the cap and an over-long export name are refused.
. "$SRCDIR/tests/harden/lib.sh"
need_serve "limit tests"
IMG=$TESTTMP/disk.img
truncate -s 64M "$IMG"
S=$TESTTMP/l.sock
in_range() { awk -v t="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(t ~ /^[0-9.]+$/ && t >= lo && t <= hi) }'; }

# ---- handshake deadline ----
start_server dl "$S" --handshake-timeout 2 "$IMG" || exit 1
t=$($PY "$H/deadline.py" "$S" silent 15)
in_range "$t" 1.5 4 && ok "a silent client is dropped after the 2 s deadline (${t}s)" ||
	fail "a silent client is dropped after the 2 s deadline (got $t)"
t=$($PY "$H/deadline.py" "$S" trickle 15)
in_range "$t" 1.5 4 && ok "a client trickling a byte every 0.3 s is dropped at the deadline (${t}s)" ||
	fail "a client trickling a byte every 0.3 s is dropped at the deadline (got $t)"
check "a normal client is served right after" nbdinfo --size "nbd+unix:///?socket=$S"
stop_server dl
start_server dl10 "$S" "$IMG" || exit 1
t=$($PY "$H/deadline.py" "$S" silent 20)
in_range "$t" 9 12 && ok "default handshake deadline is 10 s (${t}s)" || fail "default handshake deadline is 10 s (got $t)"
stop_server dl10

# ---- payload deadline ----
start_server pl "$S" --payload-timeout 2 "$IMG" || exit 1
t=$($PY "$H/deadline.py" "$S" payload 15)
in_range "$t" 1.5 4 && ok "a WRITE whose 64 MiB payload stalls is dropped after the 2 s payload timeout (${t}s)" ||
	fail "a WRITE whose 64 MiB payload stalls is dropped after the 2 s payload timeout (got $t)"
check "a 32 MiB write by qemu-io is served afterwards" bash -c \
	"qemu-io -f raw 'nbd+unix:///?socket=$S' -c 'write -P 0x44 0 32M' -c 'read -P 0x44 0 32M' | grep -q 'read 33554432/33554432'"
stop_server pl

# ---- --max-conn-inflight: a connection over its cap waits, never deadlocks ----
# The writes do not overlap: NBD gives concurrent writes no order between
# them, so every byte has one writer and each range must read back whole.
BIG=$TESTTMP/big.img
truncate -s 256M "$BIG"
start_server ci "$S" --max-conn-inflight 32M "$BIG" || exit 1
check "--max-conn-inflight 32M: 24 concurrent 2-16 MiB writes on one connection all complete and read back" \
	$PY - "$S" <<'PYEOF'
import sys, nbd
h = nbd.NBD()
h.connect_unix(sys.argv[1])
cookies, off = [], 0
for i in range(24):
    n = (2 + (i * 7) % 15) << 20
    buf = nbd.Buffer.from_bytearray(bytearray([i + 1]) * n)
    cookies.append((h.aio_pwrite(buf, off), off, n, i + 1))
    off += n
while h.aio_in_flight() > 0:
    h.poll(-1)
for c, off, n, v in cookies:
    assert h.aio_command_completed(c)
for c, off, n, v in cookies:
    assert h.pread(n, off) == bytes([v]) * n, f"write {v - 1} at {off}+{n} reads back wrong"
h.shutdown()
PYEOF
stop_server ci
rm -f "$BIG"

# ---- --max-connections ----
start_server mc "$S" --max-connections 3 --handshake-timeout 30 "$IMG" || exit 1
$PY "$H/stall.py" "$S" 3 0 0 > "$TESTTMP/stall3.out" &
stall=$!
for _ in $(seq 100); do grep -q ready "$TESTTMP/stall3.out" && break; sleep 0.1; done
sleep 0.3
r=$($PY "$H/deadline.py" "$S" refused 5)
[ "$r" = refused ] && ok "--max-connections 3: the 4th client is refused" || fail "--max-connections 3: the 4th client is refused (got $r)"
kill $stall; wait $stall 2>/dev/null
served=0
for _ in $(seq 50); do nbdinfo --size "nbd+unix:///?socket=$S" >/dev/null 2>&1 && { served=1; break; }; sleep 0.1; done
[ $served = 1 ] && ok "--max-connections 3: served again once the others left" || fail "--max-connections 3: served again once the others left"
stop_server mc

# ---- caps on option data and names ----
start_server caps "$S" "$IMG" || exit 1
$PY "$H/nbdraw.py" "$S" caps
check "the server still serves after the cap tests" nbdinfo --size "nbd+unix:///?socket=$S"
stop_server caps

# ---- 1000 stalled connections ----
if [ "$(ulimit -n)" -lt 4096 ]; then ulimit -n 4096 2>/dev/null; fi
if [ "$(ulimit -n)" -lt 2100 ]; then
	skip "1000 stalled connections" "cannot raise the open file limit (ulimit -n $(ulimit -n))"
	exit $FAILED
fi
start_server many "$S" --handshake-timeout 60 "$IMG" || exit 1
pid=${PIDS[many]}
mem() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
base_rss=$(mem "$pid" VmRSS)
base_thr=$(mem "$pid" Threads)
$PY "$H/stall.py" "$S" 400 300 300 > "$TESTTMP/stall.out" 2> "$TESTTMP/stall.err" &
stall=$!
for _ in $(seq 300); do grep -q ready "$TESTTMP/stall.out" && break; sleep 0.1; done
read -r _ held refused < "$TESTTMP/stall.out"
rss=$(mem "$pid" VmRSS); hwm=$(mem "$pid" VmHWM); thr=$(mem "$pid" Threads)
echo "    baseline VmRSS ${base_rss} kB; with ${held} stalled connections (${refused}): VmRSS ${rss} kB, VmHWM ${hwm} kB, ${thr} threads"
[ "${held:-0}" -ge 1000 ] && ok "1000 stalled connections held open (400 silent, 300 mid-handshake, 300 mid-payload)" ||
	{ fail "1000 stalled connections held open (got ${held:-0})"; sort "$TESTTMP/stall.err" | uniq -c | head; tail -n 5 "$TESTTMP/many.log"; }
grow=$(( (rss - base_rss) / 1024 ))
[ $grow -lt 400 ] && [ $(( hwm / 1024 )) -lt $(( base_rss / 1024 + 512 )) ] &&
	ok "memory bounded with 1000 stalled connections: +${grow} MiB VmRSS, VmHWM $((hwm / 1024)) MiB" ||
	fail "memory bounded with 1000 stalled connections: +${grow} MiB VmRSS, VmHWM $((hwm / 1024)) MiB"
check "nbdinfo is served while 1000 connections stall" nbdinfo --size "nbd+unix:///?socket=$S"
check "qemu-io writes and reads 1 MiB while 1000 connections stall" bash -c \
	"qemu-io -f raw 'nbd+unix:///?socket=$S' -c 'write -P 0x33 8M 1M' -c 'read -P 0x33 8M 1M' | grep -q 'read 1048576/1048576'"
kill $stall; wait $stall 2>/dev/null
gone=0
for _ in $(seq 100); do
	t=$(mem "$pid" Threads)
	# (io_uring's io-wq workers count as threads too: a little slack)
	[ "$t" -le $((base_thr + 4)) ] && { gone=1; break; }
	sleep 0.1
done
[ $gone = 1 ] && ok "the stalled connections' threads are gone once they close ($(mem "$pid" Threads) threads)" ||
	fail "the stalled connections' threads are gone once they close ($(mem "$pid" Threads) threads)"
if stop_server many; then ok "server exits cleanly after the stall test"; else fail "server exits cleanly after the stall test"; fi
exit $FAILED
