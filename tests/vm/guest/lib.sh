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

# dev_gone DEV: a ublk disk is deleted; an nbd one is disconnected (size 0)
dev_gone() {
	case $1 in
	/dev/nbd*) [ "$(cat /sys/block/${1#/dev/}/size)" = 0 ] ;;
	*) [ ! -e "$1" ] ;;
	esac
}

# fs_scenario --ublk|--nbd BACKING: attach, mkfs.ext4, mount, write files,
# sync, umount, e2fsck, detach; ask the host to check the backing image.
fs_scenario() {
	fe=$1 backing=$2
	plan "attach $fe" "mkfs.ext4" "write files" "e2fsck -fn clean" "list shows the device" "detach"
	if ! dev=$(aioloop attach -v $fe "$backing" 2>/tmp/attach.err); then
		fail "attach $fe: $(cat /tmp/attach.err)"
		return
	fi
	ok "attach $fe"
	sed 's/^/# attach: /' /tmp/attach.err
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
	if aioloop detach "$dev" 2>/tmp/detach.err && dev_gone "$dev" && [ -z "$(ls /run/aioloop)" ]; then
		ok "detach"
	else
		fail "detach: $(cat /tmp/detach.err) $(ls /dev/ublkb* /dev/nbd0 /run/aioloop 2>&1 | tr '\n' ' ')"
	fi
	echo "host - fsck"
}

# fio_verify NAME JOBS ATTACH-OPTIONS...: 4k random writes at QD32 on the
# device, each job on its own region, verified with crc32c.
fio_verify() {
	name=$1 jobs=$2
	shift 2
	truncate -s 32M /tmp/fio.img
	if dev=$(aioloop attach "$@" /tmp/fio.img 2>/tmp/attach.err); then
		if fio --name=verify --filename="$dev" --rw=randwrite --bs=4k --iodepth=32 \
			--ioengine=libaio --direct=1 --size=8m --offset_increment=8m \
			--numjobs="$jobs" --verify=crc32c --do_verify=1 --verify_fatal=1 \
			--randrepeat=0 --group_reporting --output=/tmp/fio.out >/dev/null 2>&1 &&
		   grep -q 'err= 0' /tmp/fio.out; then
			echo "# fio: $(grep -E '^ *(write|read):' /tmp/fio.out | tr -s ' \n' ' ')"
			ok "$name"
		else
			fail "$name: $(grep -iE 'err|verify' /tmp/fio.out | head -n 3 | tr '\n' ' ')"
		fi
		echo "# list: $(aioloop list | grep "^$dev ")"
		aioloop detach "$dev"
	else
		fail "$name: attach: $(cat /tmp/attach.err)"
	fi
	rm -f /tmp/fio.img
}

# blk_scenario --ublk|--nbd: fio verify, discard, read-only, offset/sizelimit
# on backing files in the guest's tmpfs.
blk_scenario() {
	fe=$1
	plan "fio randwrite 4k QD32 verify=crc32c" "2 queues, 2 fio jobs, verify=crc32c" "blkdiscard punches a hole in the backing file" \
		"read-only attach rejects writes" "--offset/--sizelimit expose exactly that window" \
		"--block-size 4096"

	# fio with verification straight on the device
	fio_verify "fio randwrite 4k QD32 verify=crc32c" 1 $fe
	fio_verify "2 queues, 2 fio jobs, verify=crc32c" 2 $fe --queues 2 --depth 16

	# discard: a fully written file loses 4 MiB of allocation
	dd if=/dev/urandom of=/tmp/d.img bs=1M count=16 2>/dev/null
	before=$(stat -c %b /tmp/d.img)
	if dev=$(aioloop attach $fe /tmp/d.img 2>/tmp/attach.err); then
		err=
		blkdiscard -o 4194304 -l 4194304 "$dev" 2>/tmp/bd.err || err="blkdiscard: $(cat /tmp/bd.err)"
		z=$(dd if="$dev" bs=1M skip=4 count=4 iflag=direct 2>/dev/null | tr -d '\000' | wc -c)
		[ "$z" = 0 ] || err="$err; discarded range reads $z non-zero bytes"
		aioloop detach "$dev" || err="$err; detach"
		after=$(stat -c %b /tmp/d.img)
		# 4 MiB = 8192 blocks of 512 bytes
		if [ -z "$err" ] && [ $((before - after)) -ge 8192 ]; then
			ok "blkdiscard punches a hole in the backing file"
		else
			fail "blkdiscard punches a hole in the backing file: blocks $before -> $after $err"
		fi
	else
		fail "blkdiscard punches a hole in the backing file: attach: $(cat /tmp/attach.err)"
	fi
	rm -f /tmp/d.img

	# read-only
	dd if=/dev/urandom of=/tmp/r.img bs=1M count=4 2>/dev/null
	sum=$(sha256sum < /tmp/r.img)
	if dev=$(aioloop attach $fe -r /tmp/r.img 2>/tmp/attach.err); then
		err=
		[ "$(blockdev --getro "$dev")" = 1 ] || err="getro is not 1"
		if dd if=/dev/zero of="$dev" bs=4k count=1 oflag=direct conv=notrunc 2>/dev/null; then
			err="$err; a write succeeded"
		fi
		dd if="$dev" of=/dev/null bs=1M 2>/dev/null || err="$err; reading failed"
		aioloop list | grep "^$dev " | grep -q ' 1 ' || err="$err; list does not say ro"
		aioloop detach "$dev" || err="$err; detach"
		[ "$(sha256sum < /tmp/r.img)" = "$sum" ] || err="$err; the backing file changed"
		if [ -z "$err" ]; then ok "read-only attach rejects writes"; else fail "read-only attach rejects writes: $err"; fi
	else
		fail "read-only attach rejects writes: attach: $(cat /tmp/attach.err)"
	fi
	rm -f /tmp/r.img

	# offset/sizelimit: a 2 MiB window at 1 MiB of an 8 MiB file
	dd if=/dev/urandom of=/tmp/o.img bs=1M count=8 2>/dev/null
	dd if=/tmp/o.img of=/tmp/o.win bs=1M skip=1 count=2 2>/dev/null
	if dev=$(aioloop attach $fe --offset 1M --sizelimit 2M /tmp/o.img 2>/tmp/attach.err); then
		err=
		size=$(blockdev --getsize64 "$dev")
		[ "$size" = 2097152 ] || err="size $size"
		dd if="$dev" of=/tmp/o.dev bs=64k iflag=direct 2>/dev/null
		cmp -s /tmp/o.dev /tmp/o.win || err="$err; contents differ from the window"
		dd if=/dev/zero of="$dev" bs=4k count=1 seek=511 oflag=direct conv=notrunc 2>/dev/null || err="$err; write at the end failed"
		if dd if=/dev/zero of="$dev" bs=4k count=1 seek=512 oflag=direct conv=notrunc 2>/dev/null; then
			err="$err; a write past the end succeeded"
		fi
		aioloop detach "$dev" || err="$err; detach"
		# the last 4 KiB of the window are zero now, nothing else changed
		dd if=/dev/zero of=/tmp/o.win bs=4k count=1 seek=511 conv=notrunc 2>/dev/null
		dd if=/tmp/o.img of=/tmp/o.win2 bs=1M skip=1 count=2 2>/dev/null
		cmp -s /tmp/o.win /tmp/o.win2 || err="$err; the window's write landed elsewhere"
		if [ -z "$err" ]; then ok "--offset/--sizelimit expose exactly that window"; else fail "--offset/--sizelimit expose exactly that window: $err"; fi
	else
		fail "--offset/--sizelimit expose exactly that window: attach: $(cat /tmp/attach.err)"
	fi
	rm -f /tmp/o.*

	# a 4096-byte logical block size
	dd if=/dev/urandom of=/tmp/b.img bs=1M count=4 2>/dev/null
	if dev=$(aioloop attach $fe --block-size 4096 /tmp/b.img 2>/tmp/attach.err); then
		err=
		[ "$(blockdev --getss "$dev")" = 4096 ] || err="logical block size $(blockdev --getss "$dev")"
		dd if="$dev" of=/tmp/b.dev bs=64k iflag=direct 2>/dev/null
		cmp -s /tmp/b.dev /tmp/b.img || err="$err; contents differ"
		dd if=/dev/urandom of=/tmp/b.new bs=4k count=1 2>/dev/null
		dd if=/tmp/b.new of="$dev" bs=4k seek=3 oflag=direct conv=notrunc,fsync 2>/dev/null || err="$err; 4k write failed"
		aioloop detach "$dev" || err="$err; detach"
		dd if=/tmp/b.img of=/tmp/b.chk bs=4k skip=3 count=1 2>/dev/null
		cmp -s /tmp/b.new /tmp/b.chk || err="$err; the 4k write did not land at 12 KiB"
		if [ -z "$err" ]; then ok "--block-size 4096"; else fail "--block-size 4096: $err"; fi
	else
		fail "--block-size 4096: attach: $(cat /tmp/attach.err)"
	fi
	rm -f /tmp/b.*
}

# net_up: the network card of a guest booted with BOOT_NET=1 (qemu's user
# network: this guest is 10.0.2.15, its gateway the host).  Loads the
# driver from /netmodules (tests/vm/run fetches it by need); 1 with the
# reason on standard error when there is no network.
net_up() {
	if [ -f /netmodules/order ]; then
		for m in $(cat /netmodules/order); do
			insmod /netmodules/$m.ko 2>/tmp/insmod.err ||
				echo "# insmod $m: $(cat /tmp/insmod.err)"
		done
	fi
	wait_for /sys/class/net/eth0 50 || { echo "no network card (eth0)" >&2; return 1; }
	ip link set lo up
	ip link set eth0 up &&
		ip addr add 10.0.2.15/24 dev eth0 &&
		ip route add default via 10.0.2.2
}
