// SPDX-License-Identifier: MIT
/*
 * Unit tests of the read-modify-write step function (lib/rmw.h) without
 * any I/O: the exact primitives planned for the head/tail cases, one
 * random sweep that runs the plan against an in-memory disk and checks
 * the result byte for byte (and that every primitive is aligned, stays in
 * the bounce and in the request's aligned superset, and that only the
 * first step reads a head and only the last a tail), and the helpers that
 * decide whether RMW is needed and how much bounce it takes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rmw.h"

struct want {
	uint8_t kind;
	uint64_t off, len, boff, pos, copy_boff, copy_len;
};

static void expect_plan(const struct rmw_req *r, const struct want *w, size_t n)
{
	struct rmw_state s = {0};
	struct rmw_io io;

	for (size_t i = 0; i < n; i++) {
		rmw_next(r, &s, &io);
		assert_int_equal(io.kind, w[i].kind);
		if (io.kind == RMW_DONE)
			return;
		assert_int_equal(io.off, w[i].off);
		assert_int_equal(io.len, w[i].len);
		assert_int_equal(io.boff, w[i].boff);
		assert_int_equal(io.copy_len, w[i].copy_len);
		if (w[i].copy_len) {
			assert_int_equal(io.pos, w[i].pos);
			assert_int_equal(io.copy_boff, w[i].copy_boff);
		}
	}
	fail_msg("plan longer than expected");
}

/* A write inside one block: read it, patch, write it; no tail read. */
static void test_write_inside_block(void **state)
{
	struct rmw_req r = {.off = 100, .len = 200, .align = 512, .chunk = 1 << 20};
	const struct want w[] = {
	    {RMW_READ, 0, 512, 0, 0, 0, 0},
	    {RMW_WRITE, 0, 512, 0, 0, 100, 200},
	    {RMW_DONE, 0, 0, 0, 0, 0, 0},
	};

	(void)state;
	expect_plan(&r, w, 3);
}

/* Aligned start, unaligned end: only the tail block is read. */
static void test_write_tail_only(void **state)
{
	struct rmw_req r = {.off = 512, .len = 1000, .align = 512, .chunk = 1 << 20};
	const struct want w[] = {
	    {RMW_READ, 1024, 512, 512, 0, 0, 0},
	    {RMW_WRITE, 512, 1024, 0, 0, 0, 1000},
	    {RMW_DONE, 0, 0, 0, 0, 0, 0},
	};

	(void)state;
	expect_plan(&r, w, 3);
}

/* Both ends mid-block: head and tail read, one write of the superset. */
static void test_write_head_and_tail(void **state)
{
	struct rmw_req r = {.off = 100, .len = 1000, .align = 512, .chunk = 1 << 20};
	const struct want w[] = {
	    {RMW_READ, 0, 512, 0, 0, 0, 0},
	    {RMW_READ, 1024, 512, 1024, 0, 0, 0},
	    {RMW_WRITE, 0, 1536, 0, 0, 100, 1000},
	    {RMW_DONE, 0, 0, 0, 0, 0, 0},
	};

	(void)state;
	expect_plan(&r, w, 4);
}

/* Aligned range (a misaligned buffer brought it here): no reads. */
static void test_write_aligned(void **state)
{
	struct rmw_req r = {.off = 4096, .len = 8192, .align = 4096, .chunk = 1 << 20};
	const struct want w[] = {
	    {RMW_WRITE, 4096, 8192, 0, 0, 0, 8192},
	    {RMW_DONE, 0, 0, 0, 0, 0, 0},
	};

	(void)state;
	expect_plan(&r, w, 2);
}

/* A read in steps of chunk: each step reads its aligned superset and
 * copies its own bytes out. */
static void test_read_steps(void **state)
{
	struct rmw_req r = {.off = 100, .len = 3000, .align = 512, .chunk = 1024, .read = true};
	const struct want w[] = {
	    {RMW_READ, 0, 1024, 0, 0, 100, 924},      /* [100, 1024) */
	    {RMW_READ, 1024, 1024, 0, 924, 0, 1024},  /* [1024, 2048) */
	    {RMW_READ, 2048, 1024, 0, 1948, 0, 1024}, /* [2048, 3072) */
	    {RMW_READ, 3072, 512, 0, 2972, 0, 28},    /* [3072, 3100) */
	    {RMW_DONE, 0, 0, 0, 0, 0, 0},
	};

	(void)state;
	expect_plan(&r, w, 5);
}

#define DISK (256u * 1024u)

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Run one request's plan against disk; returns the number of steps. */
static unsigned int run_plan(const struct rmw_req *r, uint8_t *disk, uint8_t *user, bool zero)
{
	uint64_t blen = rmw_bounce_len(r), as = r->off & ~(r->align - 1);
	uint64_t ae = (r->off + r->len + r->align - 1) & ~(r->align - 1);
	uint8_t *bounce = malloc(blen);
	struct rmw_state s = {0};
	unsigned int steps = 0, heads = 0, tails = 0;
	uint64_t last_write_end = 0;
	struct rmw_io io;

	assert_non_null(bounce);
	memset(bounce, 0xee, blen); /* stale bytes must never reach the disk */
	while (rmw_next(r, &s, &io) != RMW_DONE) {
		assert_int_equal(io.off % r->align, 0);
		assert_int_equal(io.len % r->align, 0);
		assert_true(io.len > 0);
		assert_true(io.boff + io.len <= blen);
		assert_true(io.off >= as && io.off + io.len <= ae);
		assert_true(io.copy_boff + io.copy_len <= blen);
		assert_true(io.pos + io.copy_len <= r->len);
		if (io.kind == RMW_READ) {
			memcpy(bounce + io.boff, disk + io.off, io.len);
			if (r->read) {
				assert_true(io.copy_len > 0);
				rmw_copy_out(&io, bounce, user);
				steps++;
			} else if (io.off < r->off) {
				heads++;
				assert_int_equal(steps, 0); /* only the first step */
			} else {
				tails++;
			}
		} else {
			assert_false(r->read);
			rmw_copy_in(&io, bounce, zero ? NULL : user);
			memcpy(disk + io.off, bounce + io.boff, io.len);
			assert_true(io.off >= last_write_end); /* steps go forward */
			last_write_end = io.off + io.len;
			steps++;
		}
	}
	assert_true(heads <= 1 && tails <= 1);
	free(bounce);
	return steps;
}

/* Random requests against an in-memory disk: the result is exactly the
 * request applied, whatever the alignment, length and step size. */
static void test_random_against_memory(void **state)
{
	static const uint64_t aligns[] = {512, 4096, 65536};
	uint8_t *disk = malloc(DISK), *want = malloc(DISK), *user = malloc(DISK);
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	(void)state;
	assert_non_null(disk);
	assert_non_null(want);
	assert_non_null(user);
	for (uint64_t i = 0; i < DISK; i++)
		disk[i] = (uint8_t)rnd(&seed);
	memcpy(want, disk, DISK);
	for (int iter = 0; iter < 3000; iter++) {
		struct rmw_req r;
		uint64_t a = aligns[rnd(&seed) % 3];
		int kind = (int)(rnd(&seed) % 3); /* read, write, zeroes */
		unsigned int steps;

		r.align = a;
		r.chunk = a * (1 + rnd(&seed) % 4);
		r.off = rnd(&seed) % (DISK - 1);
		r.len = 1 + rnd(&seed) % (DISK - r.off < 3 * r.chunk ? DISK - r.off : 3 * r.chunk);
		r.read = kind == 0;
		for (uint64_t j = 0; j < r.len; j++)
			user[j] = (uint8_t)rnd(&seed);
		steps = run_plan(&r, disk, user, kind == 2);
		assert_true(steps >= 1);
		if (r.read) {
			assert_memory_equal(user, want + r.off, r.len);
		} else if (kind == 1) {
			memcpy(want + r.off, user, r.len);
		} else {
			memset(want + r.off, 0, r.len);
		}
		assert_memory_equal(disk, want, DISK);
	}
	free(user);
	free(want);
	free(disk);
}

static void test_needed_and_bounce(void **state)
{
	struct rmw_req r = {.off = 100, .len = 10, .align = 512, .chunk = 1 << 20};
	char *p = (char *)(uintptr_t)0x10000;

	(void)state;
	assert_false(rmw_needed(4096, 8192, p, 512, 512));
	assert_true(rmw_needed(4096 + 1, 8192, p, 512, 512));
	assert_true(rmw_needed(4096, 8192 + 1, p, 512, 512));
	assert_true(rmw_needed(4096, 8192, p + 8, 512, 512));
	assert_false(rmw_needed(4096, 8192, p + 8, 512, 1));
	assert_false(rmw_needed(4096, 8192, NULL, 4096, 4096));
	assert_int_equal(rmw_bounce_len(&r), 512);
	r.len = 5000;
	assert_int_equal(rmw_bounce_len(&r), 5120);
	r.len = 64u << 20; /* capped at one step */
	assert_int_equal(rmw_bounce_len(&r), (1u << 20) + 512);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_write_inside_block),
	    cmocka_unit_test(test_write_tail_only),
	    cmocka_unit_test(test_write_head_and_tail),
	    cmocka_unit_test(test_write_aligned),
	    cmocka_unit_test(test_read_steps),
	    cmocka_unit_test(test_random_against_memory),
	    cmocka_unit_test(test_needed_and_bounce),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
