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
