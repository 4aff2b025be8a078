#!/bin/bash
# SPDX-License-Identifier: MIT
# Clear errors for RBD images that cannot be served: no cluster at the
# configured address (fails within seconds, naming the monitors tried), an
# image or snapshot that does not exist, a pool that does not exist, a
# malformed name, a configuration file or Ceph option that is wrong; the
# same from bench.  Each is a one-line message and exit status 1.
. "$(dirname "$0")/../nbd/lib.sh"
. "$SRCDIR/tests/ceph/lib.sh"
rbd_requires "RBD errors"
sock=$TESTTMP/e.sock

# refused NAME PATTERN ARGS...: 'aioloop ARGS' exits 1 and says PATTERN
refused() {
	local name=$1 pat=$2 st; shift 2
	timeout 60 "$AIOLOOP" "$@" >"$TESTTMP/out" 2>&1; st=$?
	if [ $st = 1 ] && grep -q -- "$pat" "$TESTTMP/out"; then
		ok "$name"
	else
		notok "$name (exit $st)"; cat "$TESTTMP/out"
	fi
}

# ---- no cluster: a monitor address where nothing listens
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf '[global]\nmon host = v1:127.0.0.1:%s\nauth client required = none\n' "$port" >"$TESTTMP/absent.conf"
start=$(date +%s)
refused "cluster absent: says it cannot connect, the monitors and configuration tried" \
	"rbd:rbd/img: cannot connect to the Ceph cluster (configuration $TESTTMP/absent.conf, monitors v1:127.0.0.1:$port, user admin): Connection timed out" \
	serve -U "$sock" "rbd:rbd/img:conf=$TESTTMP/absent.conf"
took=$(($(date +%s) - start))
check "cluster absent: fails within seconds (${took} s)" test $took -le 15
refused "cluster absent: --id is the user named" "user alice" \
	serve -U "$sock" "rbd:rbd/img:conf=$TESTTMP/absent.conf:id=alice:client_mount_timeout=1"
refused "configuration file missing" "reading the Ceph configuration $TESTTMP/nope.conf: No such file" \
	serve -U "$sock" "rbd:rbd/img:conf=$TESTTMP/nope.conf"
refused "unknown Ceph option" "Ceph option no_such_option=1: no such option" \
	serve -U "$sock" "rbd:rbd/img:conf=$TESTTMP/absent.conf:no_such_option=1"
refused "malformed name: no pool" "no pool: the form is rbd:POOL/IMAGE" serve -U "$sock" "rbd:img"
refused "malformed name: empty snapshot" "empty snapshot name" serve -U "$sock" "rbd:p/i@"
refused "bench: cluster absent" "cannot connect to the Ceph cluster" \
	bench --seconds=1 "rbd:rbd/img:conf=$TESTTMP/absent.conf:client_mount_timeout=1"

# ---- a cluster, without what is named
rbd_cluster
rbdc create --size 16M img
refused "image missing" "rbd:rbd/nope: pool 'rbd' has no image 'nope'" \
	serve -U "$sock" "rbd:rbd/nope:conf=$CEPH_CONF"
refused "wrong pool" "rbd:nopool/img: the cluster has no pool 'nopool'" \
	serve -U "$sock" "rbd:nopool/img:conf=$CEPH_CONF"
refused "snapshot missing" "has no image 'img' with a snapshot 's9'" \
	serve -U "$sock" "rbd:rbd/img@s9:conf=$CEPH_CONF"
refused "offset past the end of the image" "offset 33554432 is past the end of the image (16777216 bytes)" \
	serve -U "$sock" --offset 32M "rbd:rbd/img:conf=$CEPH_CONF"
refused "bench: image missing" "has no image 'nope'" bench --seconds=1 "rbd:rbd/nope:conf=$CEPH_CONF"
# A namespace: pool/namespace/image, and its errors name it.
if rbdc namespace create rbd/ns1 && rbdc create --size 8M rbd/ns1/nsimg; then
	check "an image in a namespace (rbd:rbd/ns1/nsimg) is opened" bash -c "
		'$AIOLOOP' bench --seconds=1 'rbd:rbd/ns1/nsimg:conf=$CEPH_CONF' >'$TESTTMP/ns.out' 2>&1 &&
		grep -q 'on rbd:rbd/ns1/nsimg' '$TESTTMP/ns.out'"
	refused "an image of the pool is not in its namespace" "pool 'rbd', namespace ns1 has no image 'img'" \
		serve -U "$sock" "rbd:rbd/ns1/img:conf=$CEPH_CONF"
else
	notok "rbd namespace create"
fi
check "bench runs on the image" bash -c "
	'$AIOLOOP' bench --seconds=1 --rw=randwrite 'rbd:rbd/img:conf=$CEPH_CONF' >'$TESTTMP/bench.out' 2>&1"
if [ ! -e /dev/ublk-control ] && [ ! -e /dev/nbd0 ]; then
	# No device here: attach gets as far as choosing a frontend, so an
	# rbd: name is taken as a name, not resolved as a path.
	refused "attach takes an rbd: name (then says why no frontend works here)" "cannot attach: ublk" \
		attach "rbd:rbd/img:conf=$CEPH_CONF"
else
	skip "attach on an rbd: name without a device: this host has ublk or nbd"
fi
nbd_finish
