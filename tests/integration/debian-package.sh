#!/bin/bash
# SPDX-License-Identifier: MIT
# The Debian package: 'dpkg-buildpackage -us -uc -b' on a copy of the tree
# (it writes the .deb into the parent directory of the source, so the copy
# sits in $TESTTMP) builds aioloop_*.deb with the program, the manual page,
# the unit templates and the docs; lintian finds no error in it; unpacked
# into a scratch root (dpkg -x), the program runs and man finds its page
# there, and 'systemd-analyze verify' passes on the units as installed.
. "$(dirname "$0")/../nbd/lib.sh"
T=$TESTTMP

for t in dpkg-buildpackage dh fakeroot meson; do
	if ! command -v $t >/dev/null; then
		skip "debian-package: $t is not installed (scripts/install-deps)"
		exit 0
	fi
done

src=$T/src/aioloop
mkdir -p "$src"
if git -C "$SRCDIR" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$SRCDIR" && git ls-files -co --exclude-standard -z | tar --null -cf - -T -) |
		tar -xf - -C "$src"
else
	(cd "$SRCDIR" && tar --exclude='./build*' --exclude='./obj-*' -cf - .) | tar -xf - -C "$src"
fi
# The unit tests run in the build's own check; nocheck keeps this short.
if (cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
	dpkg-buildpackage -us -uc -b) >"$T/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b"
else
	notok "dpkg-buildpackage -us -uc -b"; tail -n 30 "$T/build.log"
	exit 1
fi
deb=$(ls "$T"/src/aioloop_*.deb 2>/dev/null | grep -v dbgsym | head -n1)
check "aioloop_*.deb built ($(basename "$deb"))" test -f "$deb"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
missing=
# (dh_compress leaves small files uncompressed: docs either way)
for f in ./usr/bin/aioloop ./usr/share/man/man8/aioloop.8.gz \
	./lib/systemd/system/aioloop-serve@.service ./lib/systemd/system/aioloop-serve@.socket \
	./lib/systemd/system/aioloop-attach@.service ./usr/share/doc/aioloop/copyright \
	./usr/share/doc/aioloop/README.md ./usr/share/doc/aioloop/operations.md; do
	echo "$contents" | grep -qxE "$f(\.gz)?" || missing="$missing $f"
done
check "the package holds the program, man page, units and docs${missing:+ (missing:$missing)}" \
	test -z "$missing"

deps=$(dpkg-deb -f "$deb" Depends)
check "it depends on the libraries it was built with ($deps)" \
	sh -c "echo '$deps' | grep -q libmicrohttpd && echo '$deps' | grep -q libsystemd0 && echo '$deps' | grep -q liburing"

if command -v lintian >/dev/null; then
	lintian "$deb" >"$T/lintian.log" 2>&1
	if grep -q '^E:' "$T/lintian.log"; then
		notok "lintian: no errors"; grep '^E:' "$T/lintian.log"
	else
		ok "lintian: no errors ($(grep -c '^W:' "$T/lintian.log") warnings)"
	fi
else
	skip "lintian: not installed"
fi

root=$T/root
dpkg -x "$deb" "$root"
want=$(sed -n "s/^ *version : '\([^']*\)'.*/\1/p" "$SRCDIR/meson.build")
got=$("$root/usr/bin/aioloop" --version)
check "the unpacked program runs: '$got'" test "$got" = "aioloop $want"
page=$(MANPATH=$root/usr/share/man man -w aioloop 2>&1)
check "man -w aioloop finds the packaged page ($page)" test "$page" = "$root/usr/share/man/man8/aioloop.8.gz"

if command -v systemd-analyze >/dev/null; then
	for d in /lib/systemd/system /usr/lib/systemd/system; do
		[ -d "$d" ] && cp -an "$d/." "$root/lib/systemd/system/" 2>/dev/null
	done
	out=$(systemd-analyze verify --man=no --root="$root" aioloop-serve@vm1.service \
		aioloop-serve@vm1.socket aioloop-attach@vm1.service 2>&1); st=$?
	if [ $st = 0 ] && [ -z "$out" ]; then
		ok "systemd-analyze verify on the packaged units"
	else
		notok "systemd-analyze verify on the packaged units (exit $st)"; echo "$out"
	fi
else
	skip "systemd-analyze verify: not installed"
fi
exit $NBD_FAILED
