// SPDX-License-Identifier: MIT
/*
 * Unit tests of the ublk data path choice (attach/ublk/datapath.c): what
 * "auto" takes on each generation of kernel, what a forced path needs,
 * that a claimed ZERO_COPY bit on a kernel before 6.15 is not trusted, and
 * that zero copy is never picked when the engine cannot do it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "ublk.h"

/* GET_FEATURES of a few kernels (the bits that matter here) */
#define F_6_1 0ULL /* no GET_FEATURES */
#define F_6_12                                                                                     \
	(UBLK_F_SUPPORT_ZERO_COPY | UBLK_F_USER_RECOVERY | UBLK_F_CMD_IOCTL_ENCODE |               \
	 UBLK_F_USER_COPY | UBLK_F_USER_RECOVERY_FAIL_IO)
#define F_7_2 (F_6_12 | UBLK_F_UPDATE_SIZE | UBLK_F_AUTO_BUF_REG | UBLK_F_QUIESCE)

static enum ublk_data_path pick(enum ublk_data_path want, uint64_t f, bool zc_kernel, bool fixed,
				int expect_ret)
{
	enum ublk_data_path out = UBLK_DP_AUTO;
	char why[160];

	assert_int_equal(ublk_pick_data_path(want, f, zc_kernel, fixed, &out, why, sizeof(why)),
			 expect_ret);
	if (expect_ret < 0)
		assert_true(strlen(why) > 10);
	return out;
}

static void test_auto(void **state)
{
	(void)state;
	assert_int_equal(pick(UBLK_DP_AUTO, F_7_2, true, true, 0), UBLK_DP_AUTO_BUF_REG);
	/* 6.15: ZERO_COPY works, no automatic registration yet */
	assert_int_equal(pick(UBLK_DP_AUTO, F_6_12, true, true, 0), UBLK_DP_ZERO_COPY);
	/* 6.12 claims ZERO_COPY but the kernel is older than 6.15 */
	assert_int_equal(pick(UBLK_DP_AUTO, F_6_12, false, true, 0), UBLK_DP_USER_COPY);
	assert_int_equal(pick(UBLK_DP_AUTO, F_6_1, false, true, 0), UBLK_DP_COPY);
	/* an engine that cannot do fixed-buffer I/O: no zero copy */
	assert_int_equal(pick(UBLK_DP_AUTO, F_7_2, true, false, 0), UBLK_DP_USER_COPY);
}

static void test_forced(void **state)
{
	(void)state;
	assert_int_equal(pick(UBLK_DP_ANY_ZERO_COPY, F_7_2, true, true, 0), UBLK_DP_AUTO_BUF_REG);
	assert_int_equal(pick(UBLK_DP_ANY_ZERO_COPY, F_6_12, true, true, 0), UBLK_DP_ZERO_COPY);
	pick(UBLK_DP_ANY_ZERO_COPY, F_6_12, false, true, -EOPNOTSUPP);
	pick(UBLK_DP_ANY_ZERO_COPY, F_7_2, true, false, -EOPNOTSUPP);
	/* one of the two, forced */
	assert_int_equal(pick(UBLK_DP_ZERO_COPY, F_7_2, true, true, 0), UBLK_DP_ZERO_COPY);
	pick(UBLK_DP_ZERO_COPY, F_6_12, false, true, -EOPNOTSUPP);
	assert_int_equal(pick(UBLK_DP_AUTO_BUF_REG, F_7_2, true, true, 0), UBLK_DP_AUTO_BUF_REG);
	pick(UBLK_DP_AUTO_BUF_REG, F_6_12, true, true, -EOPNOTSUPP);
	assert_int_equal(pick(UBLK_DP_USER_COPY, F_7_2, true, true, 0), UBLK_DP_USER_COPY);
	pick(UBLK_DP_USER_COPY, F_6_1, false, true, -EOPNOTSUPP);
	assert_int_equal(pick(UBLK_DP_COPY, F_7_2, true, true, 0), UBLK_DP_COPY);
	assert_int_equal(pick(UBLK_DP_COPY, F_6_1, false, false, 0), UBLK_DP_COPY);
}

static void test_names_and_flags(void **state)
{
	enum ublk_data_path dp;

	(void)state;
	for (int i = UBLK_DP_AUTO; i <= UBLK_DP_ANY_ZERO_COPY; i++) {
		assert_int_equal(ublk_data_path_parse(ublk_data_path_name(i), &dp), 0);
		assert_int_equal(dp, i);
		if (i != UBLK_DP_AUTO && i != UBLK_DP_ANY_ZERO_COPY)
			assert_int_equal(
			    ublk_data_path_of_flags(ublk_data_path_flag(i) | UBLK_F_USER_RECOVERY),
			    i);
	}
	assert_int_equal(ublk_data_path_parse("zerocopy", &dp), -EINVAL);
	assert_int_equal(ublk_data_path_flag(UBLK_DP_COPY), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_auto),
	    cmocka_unit_test(test_forced),
	    cmocka_unit_test(test_names_and_flags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
