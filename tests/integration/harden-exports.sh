#!/bin/bash
# SPDX-License-Identifier: MIT
# Export names never become paths, and read-only means read-only:
#  - INFO/GO for "../etc/passwd", "/etc/passwd", the backing file's own
#    path, its basename, and a name with a NUL byte get ERR_UNKNOWN, and
#    EXPORT_NAME for them is a disconnect; configured exports still open;
#  - a hostile session (writes with and without FUA, across the end, with
#    an overflowing offset, trims, zeroes, garbage flags and commands, an
#    oversized write) against a read-only export leaves its file
#    byte-identical, through --read-only and through --export NAME=FILE,ro.
. "$SRCDIR/tests/harden/lib.sh"
need_serve "export tests"
IMG=$TESTTMP/disk.img
RO=$TESTTMP/ro.img
head -c 4M /dev/urandom > "$IMG"
head -c 4M /dev/urandom > "$RO"
sum_img=$(sha256sum < "$IMG")
sum_ro=$(sha256sum < "$RO")
S=$TESTTMP/e.sock

san=""
if [ -x "${AIOLOOP_SAN:-}" ]; then SERVE=("$AIOLOOP_SAN" serve); san=" (sanitizer build)"; fi
start_server names "$S" -e main "$IMG" --export "ro=$RO,ro" || exit 1
out=$($PY "$H/nbdraw.py" "$S" names main ro "" "../etc/passwd" "/etc/passwd" "$IMG" \
	"$(basename "$IMG")" "$RO" "main/../ro" "ro/" 2>&1)
echo "$out" | sed 's/^/    /'
want() {	# NAME REPLY
	if echo "$out" | grep -qxF "'$1' $2"; then ok "INFO '$1' -> $2"; else fail "INFO '$1' -> $2"; fi
}
want main ACK
want ro ACK
want "" ACK
for n in "../etc/passwd" "/etc/passwd" "$IMG" "$(basename "$IMG")" "$RO" "main/../ro" "ro/"; do
	want "$n" ERR_UNKNOWN
done
for n in "../etc/passwd" "/etc/passwd" "$IMG"; do
	r=$($PY "$H/nbdraw.py" "$S" export-name "$n" 2>&1)
	if [ "$r" = closed ]; then ok "EXPORT_NAME '$n' disconnects"; else fail "EXPORT_NAME '$n' disconnects (got: $r)"; fi
done
check "nbdinfo of export 'main' works" nbdinfo --size "nbd+unix:///main?socket=$S"
check_not "nbdinfo of export '/etc/passwd' fails" nbdinfo --size "nbd+unix:////etc/passwd?socket=$S"
check "hostile session against the read-only export 'ro'" $PY "$H/nbdraw.py" "$S" hostile-ro ro
$PY "$H/nbdraw.py" "$S" hostile-ro ro 2>&1 | grep -v '^ok\|^not ok' | sed 's/^/    /'
check_not "nbdcopy into the read-only export fails" nbdcopy "$IMG" "nbd+unix:///ro?socket=$S"
check_not "qemu-io write to the read-only export fails" \
	qemu-io -f raw "nbd+unix:///ro?socket=$S" -c 'write -P 1 0 4096'
if stop_server names && san_clean names; then ok "server exits cleanly$san"; else fail "server exits cleanly$san"; tail -n 30 "$TESTTMP/names.log"; fi
SERVE=("$AIOLOOP" serve)
[ "$(sha256sum < "$RO")" = "$sum_ro" ] && ok "--export ro=FILE,ro: file byte-identical after the hostile session" ||
	fail "--export ro=FILE,ro: file byte-identical after the hostile session"

start_server ro "$S" --read-only "$IMG" || exit 1
check "hostile session against --read-only" $PY "$H/nbdraw.py" "$S" hostile-ro ""
check_not "qemu-io write to --read-only fails" qemu-io -f raw "nbd+unix:///?socket=$S" -c 'write -P 1 0 4096'
check_not "nbdcopy into --read-only fails" nbdcopy "$RO" "nbd+unix:///?socket=$S"
stop_server ro
[ "$(sha256sum < "$IMG")" = "$sum_img" ] && ok "--read-only: file byte-identical after the hostile session" ||
	fail "--read-only: file byte-identical after the hostile session"
exit $FAILED
