# SPDX-License-Identifier: MIT
# Helpers for guest scenario scripts (sourced; busybox sh).
# plan NAME...      announce checks, so a hang is reported as "not ok"
# ok NAME / fail NAME: WHY / skip NAME: WHY
# check NAME CMD... ok if CMD succeeds, else "not ok" with its output
plan() { for p in "$@"; do echo "plan - $p"; done; }
ok() { echo "ok - $*"; }
fail() { echo "not ok - $*"; }
skip() { echo "skip - $*"; }
check() {
	_name=$1; shift
	if _out=$("$@" 2>&1); then
		ok "$_name"
	else
		fail "$_name: $(echo "$_out" | tail -n 3 | tr '\n' ' ')"
	fi
}
# wait_for PATH [TENTHS]: until PATH exists (default 10 s)
wait_for() {
	_n=${2:-100}
	while [ ! -e "$1" ] && [ "$_n" -gt 0 ]; do sleep 0.1; _n=$((_n - 1)); done
	[ -e "$1" ]
}

# fs_scenario --ublk|--nbd BACKING: attach, mkfs.ext4, mount, write files,
# sync, umount, e2fsck, detach; ask the host to check the backing image.
fs_scenario() {
	fe=$1 backing=$2
	plan "attach $fe" "mkfs.ext4" "write files" "e2fsck -fn clean" "list shows the device" "detach"
	if ! dev=$(aioloop attach $fe "$backing" 2>/tmp/attach.err); then
		fail "attach $fe: $(cat /tmp/attach.err)"
		return
	fi
	ok "attach $fe"
	echo "# attached $dev"
	check "mkfs.ext4" mkfs.ext4 -q -F -E nodiscard "$dev"
	if mount -t ext4 "$dev" /mnt 2>/tmp/mount.err; then
		i=0 err=
		while [ $i -lt 4 ]; do
			dd if=/dev/urandom of=/mnt/f$i bs=256k count=$((i + 1)) 2>/dev/null || err="dd f$i"
			i=$((i + 1))
		done
		mkdir -p /mnt/dir && echo "hello from the guest" > /mnt/dir/hello || err="$err hello"
		sync
		for f in /mnt/f0 /mnt/f1 /mnt/f2 /mnt/f3 /mnt/dir/hello; do
			echo "host - sum ${f#/mnt} $(sha256sum < "$f" | cut -d' ' -f1)"
		done
		umount /mnt || err="$err umount"
		if [ -z "$err" ]; then ok "write files"; else fail "write files: $err"; fi
	else
		fail "write files: mount: $(cat /tmp/mount.err)"
	fi
	check "e2fsck -fn clean" e2fsck -fn "$dev"
	if aioloop list | grep -q "^$dev "; then ok "list shows the device"; else fail "list shows the device: $(aioloop list)"; fi
	if aioloop detach "$dev" 2>/tmp/detach.err && [ ! -e "$dev" ] && [ -z "$(ls /run/aioloop)" ]; then
		ok "detach"
	else
		fail "detach: $(cat /tmp/detach.err) $(ls /dev/ublkb* /dev/nbd0 /run/aioloop 2>&1 | tr '\n' ' ')"
	fi
	echo "host - fsck"
}
