# SPDX-License-Identifier: MIT
# Host-side halves of the guest scenarios (sourced by tests/vm/run): a
# function host_SCENARIO VER SCEN LOG prepares the disks, boots, reports
# the guest's lines and then checks the disk images on the host.

# check_image VER SCEN LOG IMG: the guest's "host - sum PATH SHA256" and
# "host - fsck" requests, done on the host against the image file.
check_image() {
	local ver=$1 scen=$2 logf=$3 img=$4 line path sum got n=0 bad=""
	while IFS= read -r line; do
		case $line in
		"host - fsck")
			if out=$(e2fsck -fn "$img" 2>&1); then
				echo "ok - vm-$ver/$scen: host e2fsck -fn of the backing image is clean"
			else
				echo "not ok - vm-$ver/$scen: host e2fsck -fn of the backing image: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
			fi ;;
		"host - sum "*)
			set -- ${line#host - sum }
			path=$1 sum=$2
			got=$(debugfs -R "cat $path" "$img" 2>/dev/null | sha256sum | cut -d' ' -f1)
			n=$((n + 1))
			[ "$got" = "$sum" ] || bad="$bad $path"
			;;
		esac
	done < "$logf.clean"
	if [ $n -gt 0 ]; then
		if [ -z "$bad" ]; then
			echo "ok - vm-$ver/$scen: host reads back the $n files the guest wrote"
		else
			echo "not ok - vm-$ver/$scen: host read back different contents:$bad"
		fi
	fi
}

fs_host() {	# VER SCEN LOG
	local img=$TMP/$2.img
	rm -f "$img"
	truncate -s 64M "$img"
	boot "$1" "$2" "$3" "$img"
	report "$1" "$2" "$3"
	check_image "$1" "$2" "$3" "$img"
	rm -f "$img"
}
host_ublk-fs() { fs_host "$@"; }
host_ublk-datapath() { fs_host "$@"; }
# The benchmark: a 128 MiB disk, zeroed in the guest; results stay in the log.
host_bench() {
	local img=$TMP/$2.img
	rm -f "$img"
	truncate -s 128M "$img"
	boot "$1" "$2" "$3" "$img"
	report "$1" "$2" "$3"
	grep -a '^# \(bench\|ublk:\|loop:\)' "$3.clean"
	rm -f "$img"
}
# Where a 4k request's time goes: as host_bench, its own lines.
host_bench-where() {
	local img=$TMP/$2.img
	rm -f "$img"
	truncate -s 128M "$img"
	boot "$1" "$2" "$3" "$img"
	report "$1" "$2" "$3"
	grep -a '^# \(where\|stats\|ublk\)' "$3.clean"
	rm -f "$img"
}
host_nbd-fs() { fs_host "$@"; }

host_ublk-recover() { fs_host "$@"; }
host_nbd-recover() { fs_host "$@"; }

# powercut_boot VER SCEN LOGF IMG COUNT WHAT: boot the scenario on a fresh
# 64 MiB image and kill qemu after COUNT "ACK n" lines.  Sets POWERCUT_ACKS
# to the acknowledged sequence numbers; returns 1 (image removed, result
# reported) when qemu could not run or nothing was acknowledged.
powercut_boot() {
	local ver=$1 scen=$2 logf=$3 img=$4 count=$5 what=$6
	rm -f "$img"
	truncate -s 64M "$img"
	KILL_AFTER_RE='^ACK ' KILL_AFTER_COUNT=$count boot "$ver" "$scen" "$logf" "$img"
	EXPECT_CUT=1 report "$ver" "$scen" "$logf"
	[ -n "${QEMU_BROKEN+set}" ] && { rm -f "$img"; return 1; }
	POWERCUT_ACKS=$(grep -a '^ACK ' "$logf.clean" | awk '{ print $2 }')
	if [ -z "$POWERCUT_ACKS" ]; then
		echo "not ok - vm-$ver/$scen: $what survive the power cut: none acknowledged"
		rm -f "$img"
		return 1
	fi
}

# lost_acks READER IMG FMT: of the acknowledged sequence numbers N in
# POWERCUT_ACKS, those whose content ("READER IMG N") is not printf FMT N.
# Sets LOST (how many) and FIRST_LOST.
lost_acks() {
	local reader=$1 img=$2 fmt=$3 n
	LOST=0 FIRST_LOST=
	for n in $POWERCUT_ACKS; do
		if [ "$("$reader" "$img" "$n")" != "$(printf "$fmt" "$n")" ]; then
			LOST=$((LOST + 1)); [ -n "$FIRST_LOST" ] || FIRST_LOST=$n
		fi
	done
}
# The guest wrote sequence number N at the start of 4 KiB block N ...
read_seq_block() { dd if="$1" bs=4096 skip="$2" count=1 2>/dev/null | head -c 20 | tr -d '\000'; }
# ... or into the file /fN of the ext4 image.
read_seq_file() { debugfs -R "cat /f$2" "$1" 2>/dev/null; }

# Power cut: kill qemu after 40 acknowledged writes, then every
# acknowledged block must be in the image.
host_nbd-powercut() { host_ublk-powercut "$@"; }
host_ublk-powercut() {
	local ver=$1 scen=$2 logf=$3 img=$TMP/$2.img
	powercut_boot "$ver" "$scen" "$logf" "$img" 40 "acknowledged writes" || return
	lost_acks read_seq_block "$img" 'AIOLOOP-SEQ-%08d'
	if [ $LOST = 0 ]; then
		echo "ok - vm-$ver/$scen: all $(echo "$POWERCUT_ACKS" | wc -l) acknowledged writes survive the power cut"
	else
		echo "not ok - vm-$ver/$scen: $LOST acknowledged writes lost in the power cut (first: $FIRST_LOST)"
	fi
	rm -f "$img"
}
host_san() { fs_host "$@"; }

# Encryption: two fresh 64 MiB disks, one written through aioloop and read
# by dm-crypt, the other the other way round (the guest checks both).
host_crypt-fs() {
	local a=$TMP/$2-a.img b=$TMP/$2-b.img
	rm -f "$a" "$b"
	truncate -s 64M "$a" "$b"
	boot "$1" "$2" "$3" "$a" "$b"
	report "$1" "$2" "$3"
	rm -f "$a" "$b"
}

# Power cut under ext4: after 30 acknowledged fsyncs, qemu is killed; the
# journal is replayed on a copy and every acknowledged file must be there.
host_ublk-powercut-fs() {
	local ver=$1 scen=$2 logf=$3 img=$TMP/$2.img st
	powercut_boot "$ver" "$scen" "$logf" "$img" 30 "acknowledged files" || return
	e2fsck -fy "$img" >"$TMP/fsck.out" 2>&1; st=$?
	if [ $st -le 1 ]; then
		echo "ok - vm-$ver/$scen: journal replay and e2fsck -fy succeed after the power cut (status $st)"
	else
		echo "not ok - vm-$ver/$scen: e2fsck -fy after the power cut: status $st: $(tail -n 3 "$TMP/fsck.out" | tr '\n' ' ')"
	fi
	lost_acks read_seq_file "$img" 'AIOLOOP-FILE-%08d'
	if [ $LOST = 0 ]; then
		echo "ok - vm-$ver/$scen: all $(echo "$POWERCUT_ACKS" | wc -l) acknowledged files survive the power cut"
	else
		echo "not ok - vm-$ver/$scen: $LOST acknowledged files lost in the power cut (first: f$FIRST_LOST)"
	fi
	rm -f "$img"
}

# ublk on an RBD image: a throwaway cluster (tests/ceph/cluster) bound to
# this host's own address, which the guest reaches through qemu's user
# network (its loopback would be the guest's); the guest's client
# configuration on a small disk; the guest's "host - rbd-resize IMAGE
# SIZE" lines answered with `rbd resize` while it runs; afterwards the
# file system image checked on the host through `rbd export`.
rbd_resize_hook() {	# LOG
	local img size
	while read -r img size; do
		case " $RBD_RESIZED " in *" $img "*) continue ;; esac
		RBD_RESIZED="$RBD_RESIZED $img"
		timeout 60 rbd -c "$RBD_CONF" resize --size "$size" "rbd/$img" >/dev/null 2>&1 ||
			echo "# rbd resize rbd/$img to $size failed"
	done < <(tr -d '\r' <"$1" | sed -n 's/^host - rbd-resize //p')
}
host_ublk-rbd() {
	local ver=$1 scen=$2 logf=$3 dir=$TMP/ceph-$1 img=$TMP/$2.img disk=$TMP/$2-conf.img addr t try
	for t in ceph-mon ceph-osd ceph rbd monmaptool uuidgen; do
		command -v $t >/dev/null || { echo "skip - vm-$ver/$scen: $t missing (scripts/install-deps)"; return; }
	done
	if "$AIOLOOP" serve -U "$TMP/probe.sock" "rbd:p/i:conf=$TMP/none.conf" 2>&1 |
		grep -q 'compiled without RBD support'; then
		echo "skip - vm-$ver/$scen: aioloop built without librbd"
		return
	fi
	addr=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub("/.*", "", $4); print $4; exit }')
	if [ -z "$addr" ]; then
		echo "skip - vm-$ver/$scen: this host has no address but loopback, which the guest cannot reach"
		return
	fi
	RBD_CONF=
	for try in 1 2 3; do
		rm -rf "$dir"
		RBD_CONF=$("$SRCDIR/tests/ceph/cluster" start "$dir" --addr "$addr" 2>"$TMP/cluster.err") && break
		"$SRCDIR/tests/ceph/cluster" stop "$dir"
		RBD_CONF=
	done
	if [ -z "$RBD_CONF" ]; then
		echo "not ok - vm-$ver/$scen: a test cluster starts on $addr: $(tail -n 2 "$TMP/cluster.err" | tr '\n' ' ')"
		return
	fi
	timeout 60 rbd -c "$RBD_CONF" create --size 64M fs &&
		timeout 60 rbd -c "$RBD_CONF" create --size 32M grow ||
		echo "# rbd create failed"
	{
		echo "[global]"
		grep '^mon host' "$RBD_CONF"
		echo "auth cluster required = none"
		echo "auth service required = none"
		echo "auth client required = none"
		echo "ms bind msgr2 = false"
	} >"$disk"
	truncate -s 1M "$disk"
	RBD_RESIZED="" BOOT_NET=1 BOOT_HOOK=rbd_resize_hook boot "$ver" "$scen" "$logf" "$disk"
	report "$ver" "$scen" "$logf"
	rm -f "$img"
	if timeout 120 rbd -c "$RBD_CONF" export rbd/fs "$img" >/dev/null 2>&1; then
		check_image "$ver" "$scen" "$logf" "$img"
	else
		echo "not ok - vm-$ver/$scen: rbd export of the file system image"
	fi
	"$SRCDIR/tests/ceph/cluster" stop "$dir"
	rm -rf "$dir" "$img" "$disk"
}
