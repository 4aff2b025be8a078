// SPDX-License-Identifier: MIT
/*
 * Unit tests of region_overlap() (cli/region.c), what `attach -L` decides
 * with: another file is never an overlap, the same file, offset and size
 * limit is the same region, any byte in common is an overlap, a size limit
 * of 0 runs to the end of the file, and offset + size limit past 2^64
 * neither wraps nor misses an overlap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "region.h"

#define MIB (1ull << 20)

static enum region_overlap rel(uint64_t off_a, uint64_t lim_a, uint64_t off_b, uint64_t lim_b)
{
	struct att_region a = {.dev = 8, .ino = 12, .offset = off_a, .sizelimit = lim_a};
	struct att_region b = {.dev = 8, .ino = 12, .offset = off_b, .sizelimit = lim_b};
	enum region_overlap ab = region_overlap(&a, &b);

	/* the relation is symmetric */
	assert_int_equal(region_overlap(&b, &a), ab);
	return ab;
}

static void test_other_file(void **state)
{
	struct att_region a = {.dev = 8, .ino = 12, .offset = 0, .sizelimit = 0};
	struct att_region b = a, c = a;

	(void)state;
	b.ino = 13;
	c.dev = 9;
	assert_int_equal(region_overlap(&a, &b), REGION_APART);
	assert_int_equal(region_overlap(&a, &c), REGION_APART);
	/* a block device (inode 0) is not a file of the same number */
	b = a;
	b.ino = 0;
	assert_int_equal(region_overlap(&a, &b), REGION_APART);
}

static void test_same(void **state)
{
	(void)state;
	assert_int_equal(rel(0, 0, 0, 0), REGION_SAME);
	assert_int_equal(rel(MIB, 2 * MIB, MIB, 2 * MIB), REGION_SAME);
	/* the same start, another length: not the same region */
	assert_int_equal(rel(MIB, 2 * MIB, MIB, 0), REGION_OVERLAP);
	assert_int_equal(rel(MIB, 2 * MIB, MIB, MIB), REGION_OVERLAP);
}

static void test_bounded(void **state)
{
	(void)state;
	/* [0, 1M) and [1M, 2M) touch but share no byte */
	assert_int_equal(rel(0, MIB, MIB, MIB), REGION_APART);
	/* one byte in common */
	assert_int_equal(rel(0, MIB + 1, MIB, MIB), REGION_OVERLAP);
	assert_int_equal(rel(0, MIB, MIB - 1, MIB), REGION_OVERLAP);
	/* one inside the other */
	assert_int_equal(rel(0, 4 * MIB, MIB, MIB), REGION_OVERLAP);
	/* far apart */
	assert_int_equal(rel(0, MIB, 8 * MIB, MIB), REGION_APART);
}

static void test_to_the_end(void **state)
{
	(void)state;
	/* sizelimit 0 reaches every byte after its offset */
	assert_int_equal(rel(0, 0, 100 * MIB, MIB), REGION_OVERLAP);
	assert_int_equal(rel(4 * MIB, 0, 0, 4 * MIB), REGION_APART);
	assert_int_equal(rel(4 * MIB, 0, 0, 4 * MIB + 1), REGION_OVERLAP);
	assert_int_equal(rel(4 * MIB, 0, 8 * MIB, 0), REGION_OVERLAP);
}

static void test_no_wrap(void **state)
{
	(void)state;
	/* offset + sizelimit past 2^64 runs to the end instead of wrapping
	 * to a small end that would miss the overlap */
	assert_int_equal(rel(UINT64_MAX - 10, 100, UINT64_MAX - 5, 1), REGION_OVERLAP);
	assert_int_equal(rel(UINT64_MAX - 10, 100, 0, 16), REGION_APART);
	assert_int_equal(rel(INT64_MAX, UINT64_MAX, INT64_MAX, 1), REGION_OVERLAP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_other_file), cmocka_unit_test(test_same),
	    cmocka_unit_test(test_bounded),    cmocka_unit_test(test_to_the_end),
	    cmocka_unit_test(test_no_wrap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
