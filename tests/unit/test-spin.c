// SPDX-License-Identifier: MIT
/*
 * Unit tests of the adaptive polling policy (lib/spin.h) as a pure
 * function: sequences of completion gaps and poll outcomes go in, the
 * window it chooses comes out.  Times are in nanoseconds from an arbitrary
 * origin; US() converts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "spin.h"

#define US(x) ((uint64_t)(x)*1000u)

/* Completions every gap_us microseconds, n times, from *t on. */
static void feed(struct aiol_spin *s, uint64_t *t, unsigned int gap_us, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		*t += US(gap_us);
		aiol_spin_seen(s, *t);
	}
}

static void test_off(void **state)
{
	struct aiol_spin s;
	uint64_t t = US(1000);

	(void)state;
	aiol_spin_init(&s, 0, false);
	feed(&s, &t, 5, 100);
	assert_int_equal(aiol_spin_window(&s), 0);
	assert_int_equal(aiol_spin_decide(&s, 32, t), 0);
}

static void test_nothing_in_flight_sleeps(void **state)
{
	struct aiol_spin s;
	uint64_t t = US(1000);

	(void)state;
	aiol_spin_init(&s, 500, false);
	feed(&s, &t, 10, 50);
	assert_int_equal(aiol_spin_decide(&s, 0, t), 0);
	assert_true(aiol_spin_decide(&s, 1, t) > 0);
}

static void test_first_window_is_the_cap(void **state)
{
	struct aiol_spin s;

	(void)state;
	aiol_spin_init(&s, 500, false);
	assert_int_equal(aiol_spin_window(&s), US(500));
	/* No completion seen yet: a full window from now. */
	assert_int_equal(aiol_spin_decide(&s, 1, US(7)), US(500));
}

static void test_learns_k_times_the_gap(void **state)
{
	struct aiol_spin s;
	uint64_t t = US(1000);

	(void)state;
	aiol_spin_init(&s, 500, false);
	feed(&s, &t, 10, 200);
	/* The mean converges to 10 us (integer EWMA: within a few ns). */
	assert_in_range(s.gap_ns, US(10) - 16, US(10) + 16);
	assert_in_range(aiol_spin_window(&s), SPIN_K * (US(10) - 16), SPIN_K * (US(10) + 16));
	/* Asked right at the last completion: the whole window. */
	assert_int_equal(aiol_spin_decide(&s, 32, t), aiol_spin_window(&s));
	/* Gaps drift up to 50 us: the window follows, still under the cap. */
	feed(&s, &t, 50, 200);
	assert_in_range(aiol_spin_window(&s), US(199), US(201));
}

static void test_capped(void **state)
{
	struct aiol_spin s;
	uint64_t t = US(1000);

	(void)state;
	aiol_spin_init(&s, 100, false);
	/* 4 x 40 us = 160 us > cap: the cap. */
	feed(&s, &t, 40, 200);
	assert_int_equal(aiol_spin_window(&s), US(100));
}

static void test_gaps_over_the_cap_sleep(void **state)
{
	struct aiol_spin s;
	uint64_t t = US(1000);

	(void)state;
	aiol_spin_init(&s, 100, false);
	/* Completions every 300 us: polling up to 100 us would not reach
	 * the next one; sleep. */
	feed(&s, &t, 300, 200);
	assert_int_equal(aiol_spin_window(&s), 0);
	assert_int_equal(aiol_spin_decide(&s, 32, t), 0);
	/* And it comes back once they are close again. */
	feed(&s, &t, 5, 200);
	assert_in_range(aiol_spin_window(&s), US(19), US(21));
}

static void test_one_long_gap_is_clamped(void **state)
{
	struct aiol_spin s;
	uint64_t t = US(1000);

	(void)state;
	aiol_spin_init(&s, 100, false);
	feed(&s, &t, 10, 200);
	/* A 10-second idle counts as 2 x cap: the mean moves by 1/8 of
	 * that, not to seconds. */
	feed(&s, &t, 10000000, 1);
	assert_in_range(s.gap_ns, US(33), US(34)); /* 10 - 10/8 + 200/8 */
	assert_true(aiol_spin_window(&s) > 0);
}

static void test_window_counts_from_last_completion(void **state)
{
	struct aiol_spin s;
	uint64_t t = US(1000), w;

	(void)state;
	aiol_spin_init(&s, 500, false);
	feed(&s, &t, 10, 200);
	w = aiol_spin_window(&s);
	/* Busy for half the window since the last completion: poll the rest. */
	assert_int_equal(aiol_spin_decide(&s, 8, t + w / 2), w - w / 2);
	aiol_spin_outcome(&s, true);
	/* Busy past the window: sleep. */
	assert_int_equal(aiol_spin_decide(&s, 8, t + w), 0);
	assert_int_equal(aiol_spin_decide(&s, 8, t + w + US(1)), 0);
}

static void test_misses_back_off(void **state)
{
	struct aiol_spin s;
	uint64_t t = US(1000);
	unsigned int slept;

	(void)state;
	aiol_spin_init(&s, 500, false);
	feed(&s, &t, 10, 200);
	/* SPIN_MISS_LIMIT - 1 misses: still polling. */
	for (int i = 0; i < SPIN_MISS_LIMIT - 1; i++) {
		assert_true(aiol_spin_decide(&s, 1, t) > 0);
		aiol_spin_outcome(&s, false);
	}
	assert_true(aiol_spin_decide(&s, 1, t) > 0);
	aiol_spin_outcome(&s, false);
	/* The limit: the next SPIN_BACKOFF_MIN waits sleep, then it polls. */
	for (unsigned int i = 0; i < SPIN_BACKOFF_MIN; i++)
		assert_int_equal(aiol_spin_decide(&s, 1, t), 0);
	assert_true(aiol_spin_decide(&s, 1, t) > 0);
	aiol_spin_outcome(&s, false);
	/* Still not paying: the next round sleeps twice as long. */
	for (int i = 0; i < SPIN_MISS_LIMIT - 1; i++) {
		assert_true(aiol_spin_decide(&s, 1, t) > 0);
		aiol_spin_outcome(&s, false);
	}
	for (unsigned int i = 0; i < 2 * SPIN_BACKOFF_MIN; i++)
		assert_int_equal(aiol_spin_decide(&s, 1, t), 0);
	/* A hit resets both the misses and the back-off. */
	assert_true(aiol_spin_decide(&s, 1, t) > 0);
	aiol_spin_outcome(&s, true);
	for (int i = 0; i < SPIN_MISS_LIMIT; i++) {
		assert_true(aiol_spin_decide(&s, 1, t) > 0);
		aiol_spin_outcome(&s, false);
	}
	slept = 0;
	while (aiol_spin_decide(&s, 1, t) == 0)
		slept++;
	assert_int_equal(slept, SPIN_BACKOFF_MIN);
}

static void test_backoff_is_bounded(void **state)
{
	struct aiol_spin s;
	uint64_t t = US(1000);
	unsigned int slept = 0;

	(void)state;
	aiol_spin_init(&s, 500, false);
	feed(&s, &t, 10, 200);
	/* Never a hit: the back-off doubles up to SPIN_BACKOFF_MAX, no more. */
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < SPIN_MISS_LIMIT; i++) {
			while (aiol_spin_decide(&s, 1, t) == 0)
				;
			aiol_spin_outcome(&s, false);
		}
	}
	while (aiol_spin_decide(&s, 1, t) == 0)
		slept++;
	assert_int_equal(slept, SPIN_BACKOFF_MAX);
	assert_true(s.sleeps > s.polls);
}

static void test_many_in_flight_sleep_for_a_batch(void **state)
{
	struct aiol_spin s;
	uint64_t t = US(1000);

	(void)state;
	/* A ring without batched wake-ups: always one, polling as usual. */
	aiol_spin_init(&s, 500, false);
	feed(&s, &t, 10, 200);
	assert_int_equal(aiol_spin_batch(&s, 32), 1);
	assert_true(aiol_spin_decide(&s, 32, t) > 0);
	/* With them: few in flight poll, many sleep for a quarter, capped. */
	aiol_spin_init(&s, 500, true);
	feed(&s, &t, 10, 200);
	assert_int_equal(aiol_spin_batch(&s, SPIN_BATCH_MIN - 1), 1);
	assert_true(aiol_spin_decide(&s, SPIN_BATCH_MIN - 1, t) > 0);
	aiol_spin_outcome(&s, true);
	assert_int_equal(aiol_spin_batch(&s, SPIN_BATCH_MIN), SPIN_BATCH_MIN / 4);
	assert_int_equal(aiol_spin_decide(&s, SPIN_BATCH_MIN, t), 0);
	assert_int_equal(aiol_spin_batch(&s, 32), 8);
	assert_int_equal(aiol_spin_decide(&s, 32, t), 0);
	assert_int_equal(aiol_spin_batch(&s, 1000), SPIN_BATCH_MAX);
	/* Polling off: no batch either (the loop then sleeps as it always did). */
	aiol_spin_init(&s, 0, true);
	assert_int_equal(aiol_spin_batch(&s, 32), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_off),
	    cmocka_unit_test(test_nothing_in_flight_sleeps),
	    cmocka_unit_test(test_first_window_is_the_cap),
	    cmocka_unit_test(test_learns_k_times_the_gap),
	    cmocka_unit_test(test_capped),
	    cmocka_unit_test(test_gaps_over_the_cap_sleep),
	    cmocka_unit_test(test_one_long_gap_is_clamped),
	    cmocka_unit_test(test_window_counts_from_last_completion),
	    cmocka_unit_test(test_misses_back_off),
	    cmocka_unit_test(test_backoff_is_bounded),
	    cmocka_unit_test(test_many_in_flight_sleep_for_a_batch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
