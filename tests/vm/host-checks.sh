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
