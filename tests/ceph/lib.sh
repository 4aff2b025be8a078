# SPDX-License-Identifier: MIT
# Shared helpers of the tests/integration/rbd-*.sh scripts (sourced, after
# tests/nbd/lib.sh): skip when Ceph's daemons or aioloop's RBD support are
# missing, start a throwaway cluster (tests/ceph/cluster) in $TESTTMP/ceph
# and always stop it on exit, along with every server the script started.

CEPH_DIR=$TESTTMP/ceph
CEPH_CONF=

rbd_cleanup() {
	nbd_cleanup
	[ -f "$CEPH_DIR/ceph.conf" ] && "$SRCDIR/tests/ceph/cluster" stop "$CEPH_DIR"
}
trap rbd_cleanup EXIT

# rbd_requires NAME: skip NAME (and exit 0) unless a cluster can be run
# here and aioloop was built with librbd.
rbd_requires() {
	local t out
	for t in ceph-mon ceph-osd ceph rbd monmaptool uuidgen; do
		command -v $t >/dev/null || { skip "$1: $t missing (scripts/install-deps)"; exit 0; }
	done
	out=$("$AIOLOOP" serve -U "$TESTTMP/probe.sock" "rbd:p/i:conf=$TESTTMP/none.conf" 2>&1)
	case $out in
	*"compiled without RBD support"*) skip "$1: aioloop built without librbd"; exit 0 ;;
	esac
}

# rbd_cluster [--bluestore]: start the cluster; sets CEPH_CONF.
# A start that fails is tried once more in a fresh directory (the OSD's
# first contact with the monitor sometimes fails several times in a row).
rbd_cluster() {
	local try
	for try in 1 2; do
		CEPH_CONF=$("$SRCDIR/tests/ceph/cluster" start "$CEPH_DIR" "$@" 2>"$TESTTMP/cluster.err") &&
			return 0
		"$SRCDIR/tests/ceph/cluster" stop "$CEPH_DIR"
		mv "$CEPH_DIR" "$CEPH_DIR.failed$try"
	done
	notok "a test cluster starts"
	cat "$TESTTMP/cluster.err"
	exit 1
}

# rbdc ARGS...: the rbd tool on the test cluster
rbdc() {
	timeout 60 rbd -c "$CEPH_CONF" "$@"
}
