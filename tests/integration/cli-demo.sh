#!/bin/bash
# SPDX-License-Identifier: MIT
# 'aioloop serve' without FILE makes its demo image at a fixed path,
# DIR/aioloop-demo.img, in a shared directory (/var/tmp, /tmp; here
# $AIOLOOP_DEMO_DIR).  Whatever another user put at that path beforehand
# (a symbolic link, a hard link, a file of theirs, a FIFO) must be refused
# and left as it was: never followed, truncated, served or created through.
# A directory where others could swap the file later is refused too.  The
# image is made in a private or sticky directory, and reused there.
# (The checks given to refused() are evaluated later: single quotes.)
# shellcheck disable=SC2016,SC2034
. "$(dirname "$0")/../nbd/lib.sh"
T=$TESTTMP
D=$T/shared
log=$T/demo.log
sock=$T/demo.sock
mkdir -p "$D"
chmod 1777 "$D"
export AIOLOOP_DEMO_DIR=$D
demo=$D/aioloop-demo.img

# A file of someone else's, with content that must survive.
victim=$T/victim
make_victim() {	# SIZE
	rm -f "$victim"
	printf 'precious data\n' >"$victim"
	truncate -s "$1" "$victim"
	victim_sum=$(md5sum <"$victim")
}
victim_intact() {
	[ -f "$victim" ] && [ "$(md5sum <"$victim")" = "$victim_sum" ]
}

# refused NAME CHECK...: serve without FILE exits 1 at once, says why naming
# the path, leaves no socket; then every CHECK command holds.  The checks are
# strings evaluated afterwards, hence in single quotes.
refused() {
	local name=$1 st; shift
	rm -f "$sock"
	timeout 5 "$AIOLOOP" serve -t 1 -U "$sock" >/dev/null 2>"$log"; st=$?
	if [ "$st" != 1 ]; then
		notok "$name: exit $st, want 1: $(head -c 300 "$log")"
	elif ! grep -q "$demo\|$D" "$log"; then
		notok "$name: the message does not name the path: $(head -c 300 "$log")"
	elif [ -e "$sock" ]; then
		notok "$name: a socket was left listening"
	else
		for c in "$@"; do
			if ! eval "$c"; then
				notok "$name: does not hold: $c"
				return
			fi
		done
		echo "# $(head -n 1 "$log")"
		ok "$name"
	fi
}

make_victim 1M
ln -s "$victim" "$demo"
refused "a symlink to another file is not followed nor truncated" victim_intact \
	'[ -L "$demo" ]'
rm -f "$demo"

# The size of a demo image: the old code served such a file as its own.
make_victim 256M
ln -s "$victim" "$demo"
refused "a symlink to a demo-sized file is not served" victim_intact '[ -L "$demo" ]'
rm -f "$demo"

ln -s "$T/created-through-link" "$demo"
refused "a dangling symlink creates nothing at its target" \
	'[ ! -e "$T/created-through-link" ]' '[ -L "$demo" ]'
rm -f "$demo"

make_victim 256M
if ln "$victim" "$demo" 2>/dev/null; then
	refused "a hard link to another file is not served nor rewritten" victim_intact \
		'[ "$(stat -c %h "$victim")" = 2 ]'
	rm -f "$demo"
else
	skip "a hard link to another file: cannot make one here"
fi

if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	make_victim 256M
	cp "$victim" "$demo"
	chown nobody "$demo"
	sum=$(md5sum <"$demo")
	refused "a demo-sized file of another user is not served nor rewritten" \
		'[ "$(md5sum <"$demo")" = "$sum" ]' '[ "$(stat -c %U "$demo")" = nobody ]'
	rm -f "$demo"
else
	skip "a file of another user at the path: needs root and a 'nobody' user"
fi

mkfifo "$demo"
refused "a FIFO is not opened for good (no hang)" '[ -p "$demo" ]'
rm -f "$demo"

# A directory others may write to without the sticky bit: the file could
# be swapped after the checks.
chmod 0777 "$D"
refused "a world-writable directory without the sticky bit is refused" '[ ! -e "$demo" ]'
chmod 1777 "$D"

# The honest case: created (not through anything), served, then reused.
if command -v nbdinfo >/dev/null; then
	if start_server "$AIOLOOP" "$log" "$sock" -t 1; then
		check "the demo image is made and served" \
			bash -c "[ \$(nbdinfo --size 'nbd+unix:///?socket=$sock') = 268435456 ]"
		stop_server
		check "the demo image is a regular file of ours" \
			bash -c "[ -f '$demo' ] && [ ! -L '$demo' ] && [ \$(stat -c %u '$demo') = $(id -u) ]"
		ino=$(stat -c %i "$demo")
		printf 'kept' | dd of="$demo" bs=1 seek=100000 conv=notrunc status=none
		if start_server "$AIOLOOP" "$log" "$sock" -t 1; then
			stop_server
			check "a demo image of ours is reused as it is" \
				bash -c "[ \$(stat -c %i '$demo') = $ino ] &&
					[ \$(dd if='$demo' bs=1 skip=100000 count=4 status=none) = kept ]"
		else
			notok "the demo server starts again"
		fi
	else
		notok "the demo server starts in a sticky shared directory"
	fi
else
	skip "the demo image is served: nbdinfo missing"
fi
rm -f "$demo"
nbd_finish
