# SPDX-License-Identifier: MIT
# Sourced by the tests that fetch Debian packages newer than Debian 12's own
# (guest kernels in tests/vm/run, qemu 10 in tests/interop/fetch-qemu):
# ensure_backports adds Debian's bookworm-backports suite to apt's sources
# once, as root, so that `apt-get download -t bookworm-backports PKG` works.
# The machine's installed packages are never changed: the tests unpack what
# they download with dpkg -x into a cache of their own.

# ensure_backports: 0 when bookworm-backports is (now) among apt's sources.
ensure_backports() {
	local f=/etc/apt/sources.list.d/aioloop-backports.sources
	if apt-cache policy 2>/dev/null | grep -q 'bookworm-backports'; then
		return 0
	fi
	[ "$(id -u)" = 0 ] || return 1
	if [ ! -f "$f" ]; then
		cat > "$f" <<-'EOS'
		Types: deb
		URIs: http://deb.debian.org/debian
		Suites: bookworm-backports
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
		EOS
	fi
	apt-get update -qq >/dev/null 2>&1
	apt-cache policy 2>/dev/null | grep -q 'bookworm-backports'
}
