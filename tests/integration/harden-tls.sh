#!/bin/bash
# SPDX-License-Identifier: MIT
# NBD over TLS with real clients: nbdinfo and nbdcopy (libnbd) and
# qemu-img/qemu-io, X.509 and PSK, --tls=require|on, --tls-verify-peer;
# refusals: a plaintext client against require, a client that does not
# trust the server's CA, client certificates from another CA or none,
# a wrong PSK.  Certificates are made with certtool (tests/harden/mkcerts.sh).
# The X.509 server runs the sanitizer build when there is one.
. "$SRCDIR/tests/harden/lib.sh"
need_serve "TLS tests"
need_tls "TLS tests"
for t in nbdinfo nbdcopy qemu-img qemu-io certtool; do
	command -v $t >/dev/null || { skip "TLS tests" "$t is not installed"; exit 0; }
done
PKI=$TESTTMP/pki
if ! "$H/mkcerts.sh" "$PKI" >/dev/null 2>&1; then
	skip "TLS tests" "cannot make certificates"; exit 0
fi
mkdir -p "$PKI/nocert" && cp "$PKI/ca-cert.pem" "$PKI/nocert/"
IMG=$TESTTMP/disk.img
head -c 16M /dev/urandom > "$TESTTMP/src.bin"
truncate -s 64M "$IMG"
S=$TESTTMP/tls.sock
uri() { echo "nbds+unix:///?socket=$S&tls-certificates=$1"; }
qopts() { echo "--object tls-creds-x509,id=tls0,dir=$1,endpoint=client"; }
qimg() { echo "driver=nbd,path=$S,tls-creds=tls0,tls-hostname=localhost"; }

# ---- X.509, --tls=require ----
san=""
if [ -x "${AIOLOOP_SAN:-}" ]; then SERVE=("$AIOLOOP_SAN" serve); san=" (sanitizer build)"; fi
start_server x509 "$S" --tls=require --tls-certificates "$PKI" "$IMG" || exit 1
check "nbdinfo over TLS (X.509)$san" bash -c "nbdinfo '$(uri "$PKI/client")' | grep -q 'with TLS'"
check "nbdcopy 16 MiB in and out over TLS, identical" bash -c \
	"nbdcopy '$TESTTMP/src.bin' '$(uri "$PKI/client")' && nbdcopy '$(uri "$PKI/client")' '$TESTTMP/out.bin' && cmp -n 16777216 '$TESTTMP/src.bin' '$TESTTMP/out.bin'"
check "qemu-img info over TLS" bash -c "qemu-img info --image-opts $(qopts "$PKI/client") '$(qimg)' | grep -q 'virtual size: 64 MiB'"
check "qemu-io write+read back over TLS" bash -c \
	"qemu-io $(qopts "$PKI/client") --image-opts '$(qimg)' -c 'write -P 0x5a 20M 1M' -c 'read -P 0x5a 20M 1M' | grep -q 'read 1048576/1048576'"
check_not "a plaintext client is refused by --tls=require" nbdinfo "nbd+unix:///?socket=$S"
check "options before STARTTLS: ERR_TLS_REQD, EXPORT_NAME: disconnect" $PY "$H/nbdraw.py" "$S" tls-reqd
"$PY" "$H/nbdraw.py" "$S" tls-reqd 2>&1 | sed 's/^/    /'
check_not "a client that does not trust the server's CA is refused" \
	qemu-io $(qopts "$PKI/other/client") --image-opts "$(qimg)" -c 'read 0 512'
check "the server survives all that" nbdinfo --size "$(uri "$PKI/client")"
if stop_server x509 && san_clean x509; then ok "X.509 server exits cleanly$san"; else fail "X.509 server exits cleanly$san"; tail -n 30 "$TESTTMP/x509.log"; fi
SERVE=("$AIOLOOP" serve)

# ---- client certificates: --tls-verify-peer ----
start_server verify "$S" --tls=require --tls-certificates "$PKI" --tls-verify-peer "$IMG" || exit 1
check "--tls-verify-peer: a client certificate from the CA is accepted" nbdinfo --size "$(uri "$PKI/client")"
check "--tls-verify-peer: qemu-io with a client certificate from the CA" \
	qemu-io $(qopts "$PKI/client") --image-opts "$(qimg)" -c 'read 0 4096'
check_not "--tls-verify-peer: a client certificate from another CA is refused" nbdinfo --size "$(uri "$PKI/badclient")"
check_not "--tls-verify-peer: qemu-io with another CA's certificate is refused" \
	qemu-io $(qopts "$PKI/badclient") --image-opts "$(qimg)" -c 'read 0 4096'
check_not "--tls-verify-peer: a client without certificate is refused" nbdinfo --size "$(uri "$PKI/nocert")"
stop_server verify

# ---- PSK ----
start_server psk "$S" --tls=require --tls-psk "$PKI/keys.psk" "$IMG" || exit 1
check "PSK: nbdinfo with the right key" nbdinfo --size "nbds+unix://alice@/?socket=$S&tls-psk-file=$PKI/keys.psk"
check "PSK: qemu-io with tls-creds-psk" bash -c \
	"qemu-io --object tls-creds-psk,id=tls0,dir='$PKI',username=alice,endpoint=client --image-opts 'driver=nbd,path=$S,tls-creds=tls0' -c 'read -P 0x5a 20M 4096' | grep -q 'read 4096/4096'"
check_not "PSK: a wrong key is refused" nbdinfo --size "nbds+unix://mallory@/?socket=$S&tls-psk-file=$PKI/other/keys.psk"
check_not "PSK: a plaintext client is refused" nbdinfo --size "nbd+unix:///?socket=$S"
stop_server psk

# ---- --tls=on: both kinds of client ----
start_server on "$S" --tls=on --tls-certificates "$PKI" "$IMG" || exit 1
check "--tls=on: a TLS client" bash -c "nbdinfo '$(uri "$PKI/client")' | grep -q 'with TLS'"
check "--tls=on: a plaintext client too" bash -c "nbdinfo 'nbd+unix:///?socket=$S' | grep -q 'without TLS'"
$PY "$H/nbdraw.py" "$S" tls-forget "$PKI/ca-cert.pem" || FAILED=1
stop_server on

# ---- TLS over pipes: serve -s under libnbd's connect_command ----
check "TLS over stdin/stdout (serve -s), 1 MiB written and read back" $PY - "$AIOLOOP" "$PKI" "$IMG" <<'PYEOF'
import sys, nbd
aioloop, pki, img = sys.argv[1:4]
h = nbd.NBD()
h.set_tls(nbd.TLS_REQUIRE)
h.set_tls_certificates(pki + "/client")
h.connect_command([aioloop, "serve", "-s", "--tls=require", "--tls-certificates", pki, img])
assert h.get_tls_negotiated()
data = bytes(range(256)) * 4096
h.pwrite(data, 4 << 20, nbd.CMD_FLAG_FUA)
assert h.pread(len(data), 4 << 20) == data
h.shutdown()
PYEOF

# ---- a stalled TLS handshake is bounded by the handshake deadline ----
start_server stall "$S" --tls=require --tls-certificates "$PKI" --handshake-timeout 2 "$IMG" || exit 1
t=$($PY "$H/deadline.py" "$S" starttls 15)
awk -v t="$t" 'BEGIN { exit !(t ~ /^[0-9.]+$/ && t >= 1.5 && t <= 4) }' &&
	ok "a client that stalls after STARTTLS is dropped at the 2 s deadline (${t}s)" ||
	fail "a client that stalls after STARTTLS is dropped at the 2 s deadline (got $t)"
check "and the next TLS client is served" nbdinfo --size "$(uri "$PKI/client")"
stop_server stall

# ---- a WRITE payload that stalls inside TLS is bounded too ----
start_server tlspl "$S" --tls=require --tls-certificates "$PKI" --payload-timeout 2 "$IMG" || exit 1
t=$($PY "$H/deadline.py" "$S" tls-payload 15 "$PKI/ca-cert.pem")
awk -v t="$t" 'BEGIN { exit !(t ~ /^[0-9.]+$/ && t >= 1.5 && t <= 4) }' &&
	ok "a WRITE payload stalling inside TLS is dropped after the 2 s payload timeout (${t}s)" ||
	fail "a WRITE payload stalling inside TLS is dropped after the 2 s payload timeout (got $t)"
check "and a TLS client writes 32 MiB afterwards" bash -c \
	"qemu-io $(qopts "$PKI/client") --image-opts '$(qimg)' -c 'write -P 0x77 0 32M' -c 'read -P 0x77 0 32M' | grep -q 'read 33554432/33554432'"
stop_server tlspl

# ---- bad credentials fail at startup, not at the first client ----
check_not "missing certificate directory: serve refuses to start" \
	"$AIOLOOP" serve -U "$TESTTMP/x.sock" --tls=require --tls-certificates "$TESTTMP/nonexistent" "$IMG"
check_not "--tls=require without credentials: serve refuses to start" \
	"$AIOLOOP" serve -U "$TESTTMP/x.sock" --tls=require "$IMG"
exit $FAILED
