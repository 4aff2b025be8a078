// SPDX-License-Identifier: MIT
/*
 * Unit tests of the RBD image name parser (lib/rbdname.h), without a
 * cluster: qemu's rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:KEY=VALUE]... forms,
 * backslash escapes, the conf and id keys, other Ceph options passed on in
 * order, and each malformed name refused with its reason.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "aioloop/store.h"
#include "rbdname.h"

static void parse_ok(const char *s, struct rbd_name *n)
{
	char err[256] = "";
	int ret = rbd_name_parse(s, n, err, sizeof(err));

	if (ret)
		fail_msg("'%s': %d %s", s, ret, err);
}

/* Parses to -EINVAL with a reason that contains why. */
static void parse_bad(const char *s, const char *why)
{
	struct rbd_name n;
	char err[256] = "";

	assert_int_equal(rbd_name_parse(s, &n, err, sizeof(err)), -EINVAL);
	if (!strstr(err, why))
		fail_msg("'%s': reason '%s' does not say '%s'", s, err, why);
	assert_null(n.mem);
}

static void test_pool_image(void **state)
{
	struct rbd_name n;

	(void)state;
	parse_ok("rbd:rbd/img", &n);
	assert_string_equal(n.pool, "rbd");
	assert_string_equal(n.image, "img");
	assert_null(n.ns);
	assert_null(n.snap);
	assert_null(n.conf);
	assert_null(n.id);
	assert_int_equal(n.nopts, 0);
	rbd_name_free(&n);
}

static void test_snap_conf_id(void **state)
{
	struct rbd_name n;

	(void)state;
	parse_ok("rbd:pool/image@snap1:conf=/etc/ceph/x.conf:id=alice", &n);
	assert_string_equal(n.pool, "pool");
	assert_string_equal(n.image, "image");
	assert_string_equal(n.snap, "snap1");
	assert_string_equal(n.conf, "/etc/ceph/x.conf");
	assert_string_equal(n.id, "alice");
	rbd_name_free(&n);

	/* Options in any order, without a snapshot. */
	parse_ok("rbd:p/i:id=bob:conf=c.conf", &n);
	assert_null(n.snap);
	assert_string_equal(n.conf, "c.conf");
	assert_string_equal(n.id, "bob");
	rbd_name_free(&n);
}

static void test_namespace(void **state)
{
	struct rbd_name n;

	(void)state;
	parse_ok("rbd:p/ns/i@s", &n);
	assert_string_equal(n.pool, "p");
	assert_string_equal(n.ns, "ns");
	assert_string_equal(n.image, "i");
	assert_string_equal(n.snap, "s");
	rbd_name_free(&n);
}

static void test_ceph_options(void **state)
{
	struct rbd_name n;

	(void)state;
	parse_ok("rbd:p/i:mon_host=127.0.0.1\\:6789:conf=a:rados_osd_op_timeout=5", &n);
	assert_string_equal(n.conf, "a");
	assert_int_equal(n.nopts, 2);
	assert_string_equal(n.key[0], "mon_host");
	assert_string_equal(n.val[0], "127.0.0.1:6789");
	assert_string_equal(n.key[1], "rados_osd_op_timeout");
	assert_string_equal(n.val[1], "5");
	rbd_name_free(&n);
}

static void test_escapes(void **state)
{
	struct rbd_name n;

	(void)state;
	/* '\' takes the next character as it is, in every part. */
	parse_ok("rbd:my\\/pool/a\\:b\\@c@s\\:1:conf=/x/y\\:z.conf", &n);
	assert_string_equal(n.pool, "my/pool");
	assert_string_equal(n.image, "a:b@c");
	assert_string_equal(n.snap, "s:1");
	assert_string_equal(n.conf, "/x/y:z.conf");
	rbd_name_free(&n);

	parse_ok("rbd:p/back\\\\slash", &n);
	assert_string_equal(n.image, "back\\slash");
	rbd_name_free(&n);
}

static void test_bad_names(void **state)
{
	char many[512];
	int len;

	(void)state;
	parse_bad("rbc:p/i", "starts with 'rbd:'");
	parse_bad("rbd:", "empty");
	parse_bad("rbd:img", "no pool");
	parse_bad("rbd:img@snap", "no pool");
	parse_bad("rbd:/img", "empty");
	parse_bad("rbd:p/", "empty");
	parse_bad("rbd:p//i", "empty");
	parse_bad("rbd:a/b/c/d", "too many '/'");
	parse_bad("rbd:p/i@", "empty snapshot");
	parse_bad("rbd:p/i@:conf=x", "empty snapshot");
	parse_bad("rbd:p/i:", "empty option");
	parse_bad("rbd:p/i:conf", "has no value");
	parse_bad("rbd:p/i:=x", "empty option");
	parse_bad("rbd:p/i:conf=", "is empty");
	parse_bad("rbd:p/i:id=a:id=b", "given twice");
	parse_bad("rbd:p/i\\", "escapes nothing");
	parse_bad("rbd:p/i:conf=x\\", "escapes nothing");

	len = snprintf(many, sizeof(many), "rbd:p/i");
	for (int i = 0; i <= RBD_NAME_MAX_OPTS; i++)
		len += snprintf(many + len, sizeof(many) - (size_t)len, ":k%d=v", i);
	parse_bad(many, "more than");
}

static void test_is_rbd(void **state)
{
	(void)state;
	assert_true(aiol_rbd_name("rbd:p/i"));
	assert_false(aiol_rbd_name("rbd"));
	assert_false(aiol_rbd_name("./rbd:p/i"));
	assert_false(aiol_rbd_name("/var/tmp/disk.img"));
	assert_false(aiol_rbd_name(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pool_image), cmocka_unit_test(test_snap_conf_id),
	    cmocka_unit_test(test_namespace),  cmocka_unit_test(test_ceph_options),
	    cmocka_unit_test(test_escapes),    cmocka_unit_test(test_bad_names),
	    cmocka_unit_test(test_is_rbd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
