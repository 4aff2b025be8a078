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
host_nbd-fs() { fs_host "$@"; }

host_ublk-recover() { fs_host "$@"; }

# Power cut: kill qemu after 40 acknowledged writes, then every
# acknowledged block must be in the image.
host_ublk-powercut() {
	local ver=$1 scen=$2 logf=$3 img=$TMP/$2.img acks n bad=0 first=""
	rm -f "$img"
	truncate -s 64M "$img"
	KILL_AFTER_RE='^ACK ' KILL_AFTER_COUNT=40 boot "$ver" "$scen" "$logf" "$img"
	EXPECT_CUT=1 report "$ver" "$scen" "$logf"
	[ -n "${QEMU_BROKEN+set}" ] && { rm -f "$img"; return; }
	acks=$(grep -a '^ACK ' "$logf.clean" | awk '{ print $2 }')
	if [ -z "$acks" ]; then
		echo "not ok - vm-$ver/$scen: acknowledged writes survive the power cut: none acknowledged"
		rm -f "$img"; return
	fi
	for n in $acks; do
		if [ "$(dd if="$img" bs=4096 skip="$n" count=1 2>/dev/null | head -c 20)" != "$(printf 'AIOLOOP-SEQ-%08d' "$n")" ]; then
			bad=$((bad + 1)); [ -n "$first" ] || first=$n
		fi
	done
	if [ $bad = 0 ]; then
		echo "ok - vm-$ver/$scen: all $(echo "$acks" | wc -l) acknowledged writes survive the power cut"
	else
		echo "not ok - vm-$ver/$scen: $bad acknowledged writes lost in the power cut (first: $first)"
	fi
	rm -f "$img"
}
host_san() { fs_host "$@"; }
