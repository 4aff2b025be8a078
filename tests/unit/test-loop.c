// SPDX-License-Identifier: MIT
/*
 * Unit tests of the event loop: deferred work order, cross-thread posts,
 * the buffer arena's bounds and reuse, and a real ring operation (a nop)
 * dispatched to its event; with ring polling (poll_us), completions that
 * come inside the polling window and after it, and a post from another
 * thread to a loop that has gone to sleep; the arena touched and
 * registered by need; timers that expire, timers
 * cancelled before they expire, and an operation bounded by a linked
 * deadline.
 */
#include <liburing.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aioloop/loop.h"

struct counter {
	struct aiol_work w;
	int *log;
	int *n;
	int id;
};

static void count_fn(struct aiol_work *w)
{
	struct counter *c = (struct counter *)w;

	c->log[(*c->n)++] = c->id;
}

static void test_defer_fifo(void **state)
{
	struct aiol_loop *loop;
	struct counter c[3];
	int log[3], n = 0;

	(void)state;
	assert_int_equal(aiol_loop_create(NULL, &loop), 0);
	for (int i = 0; i < 3; i++) {
		c[i] = (struct counter){ .w.fn = count_fn, .log = log, .n = &n, .id = i };
		aiol_loop_defer(loop, &c[i].w);
	}
	aiol_loop_defer(loop, &c[1].w);	/* already queued: no double run */
	assert_true(aiol_loop_run_once(loop, true) >= 3);
	assert_int_equal(n, 3);
	assert_int_equal(log[0], 0);
	assert_int_equal(log[1], 1);
	assert_int_equal(log[2], 2);
	aiol_loop_destroy(loop);
}

struct poster {
	struct aiol_loop *loop;
	struct counter c[100];
};

static void *post_thread(void *arg)
{
	struct poster *p = arg;

	for (int i = 0; i < 100; i++)
		aiol_loop_post(p->loop, &p->c[i].w);
	return NULL;
}

static void test_post_cross_thread(void **state)
{
	static struct poster p;
	static int log[100];
	int n = 0;
	pthread_t t;

	(void)state;
	assert_int_equal(aiol_loop_create(NULL, &p.loop), 0);
	for (int i = 0; i < 100; i++)
		p.c[i] = (struct counter){ .w.fn = count_fn, .log = log, .n = &n, .id = i };
	assert_int_equal(pthread_create(&t, NULL, post_thread, &p), 0);
	while (n < 100)
		assert_true(aiol_loop_run_once(p.loop, true) >= 0);
	pthread_join(t, NULL);
	/* every post ran once, and one poster's posts keep their order */
	for (int i = 0; i < 100; i++)
		assert_int_equal(log[i], i);
	aiol_loop_destroy(p.loop);
}

static void test_arena_bounds(void **state)
{
	struct aiol_loop *loop;
	struct aiol_loop_opts o = { .arena_bytes = 1 << 20 };
	void *a, *b, *c;

	(void)state;
	assert_int_equal(aiol_loop_create(&o, &loop), 0);
	assert_int_equal(aiol_loop_buf_max(loop), 1 << 20);
	assert_null(aiol_loop_buf_alloc(loop, (1 << 20) + 1));	/* never fits */
	a = aiol_loop_buf_alloc(loop, 512 << 10);
	b = aiol_loop_buf_alloc(loop, 512 << 10);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal((uintptr_t)a % 4096, 0);
	assert_null(aiol_loop_buf_alloc(loop, 1));	/* full */
	assert_int_equal(aiol_loop_buf_used(loop), 1 << 20);
	aiol_loop_buf_free(loop, a, 512 << 10);
	c = aiol_loop_buf_alloc(loop, 100);
	assert_ptr_equal(c, a);
	assert_true(aiol_loop_buf_index(loop, c) == 0 || aiol_loop_buf_index(loop, c) == -1);
	assert_int_equal(aiol_loop_buf_index(loop, &o), -1);
	aiol_loop_buf_free(loop, b, 512 << 10);
	aiol_loop_buf_free(loop, c, 100);
	assert_int_equal(aiol_loop_buf_used(loop), 0);
	aiol_loop_destroy(loop);
}

struct nop_ev {
	struct aiol_event ev;
	int calls;
	int res;
};

static void nop_done(struct aiol_event *ev, int res, unsigned int flags)
{
	struct nop_ev *n = (struct nop_ev *)ev;

	(void)flags;
	n->calls++;
	n->res = res;
}

static void test_ring_event(void **state)
{
	struct aiol_loop *loop;
	struct nop_ev n = { .ev.fn = nop_done };

	(void)state;
	assert_int_equal(aiol_loop_create(NULL, &loop), 0);
	io_uring_prep_nop(aiol_loop_sqe(loop, &n.ev));
	while (!n.calls)
		assert_true(aiol_loop_run_once(loop, true) >= 0);
	assert_int_equal(n.calls, 1);
	assert_int_equal(n.res, 0);
	aiol_loop_destroy(loop);
}

/* Resident bytes of this process (statm). */
static long rss_bytes(void)
{
	long size = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

/*
 * The arena is touched and registered by need: creating a loop with a
 * 256 MiB arena does not make 256 MiB resident (registration pins what it
 * covers); buffers come from its start; a buffer handed out past the first
 * prefix is in the registered buffer, and fixed I/O into it works.
 */
static void test_arena_by_need(void **state)
{
	struct aiol_loop_opts o = { .arena_bytes = 256u << 20 };
	struct aiol_loop *loop;
	struct nop_ev n;
	uint8_t *b[24], *lo = NULL, *hi = NULL;
	long before, after;
	int fd;

	(void)state;
	before = rss_bytes();
	assert_int_equal(aiol_loop_create(&o, &loop), 0);
	after = rss_bytes();
	assert_true(before > 0 && after > 0);
	assert_true(after - before < (64l << 20));
	for (int i = 0; i < 2; i++) {
		b[i] = aiol_loop_buf_alloc(loop, 2u << 20);
		assert_non_null(b[i]);
	}
	lo = b[0] < b[1] ? b[0] : b[1];
	hi = b[0] < b[1] ? b[1] : b[0];
	assert_true(hi - lo < (8l << 20));	/* both in the first prefix */
	for (int i = 2; i < 24; i++) {
		b[i] = aiol_loop_buf_alloc(loop, 2u << 20);
		assert_non_null(b[i]);
		if (b[i] > hi)
			hi = b[i];
	}
	assert_true(hi - lo >= (32l << 20));	/* 48 MiB: the prefix grew */
	if (aiol_loop_buf_index(loop, lo) == 0) {
		for (int i = 0; i < 24; i++)
			assert_int_equal(aiol_loop_buf_index(loop, b[i] + (2u << 20) - 1), 0);
		fd = open("/dev/zero", O_RDONLY);
		assert_true(fd >= 0);
		memset(hi, 0xff, 4096);
		n = (struct nop_ev){ .ev.fn = nop_done };
		io_uring_prep_read_fixed(aiol_loop_sqe(loop, &n.ev), fd, hi, 4096, 0, 0);
		while (!n.calls)
			assert_true(aiol_loop_run_once(loop, true) >= 0);
		assert_int_equal(n.res, 4096);
		assert_int_equal(hi[0], 0);
		assert_int_equal(hi[4095], 0);
		close(fd);
	}
	for (int i = 0; i < 24; i++)
		aiol_loop_buf_free(loop, b[i], 2u << 20);
	assert_int_equal(aiol_loop_buf_used(loop), 0);
	aiol_loop_destroy(loop);
}

struct submit_work {
	struct aiol_work w;
	struct aiol_loop *loop;
	struct nop_ev *ev;
	unsigned int ready_after;
};

static void submit_fn(struct aiol_work *w)
{
	struct submit_work *sw = (struct submit_work *)w;

	io_uring_prep_nop(aiol_loop_sqe(sw->loop, &sw->ev->ev));
}

static void check_fn(struct aiol_work *w)
{
	struct submit_work *sw = (struct submit_work *)w;

	sw->ready_after = io_uring_sq_ready(aiol_loop_ring(sw->loop));
}

/* With submit_batch 1 an SQE prepared by deferred work is handed to the
 * kernel before the next work item runs; with 0 it waits for the pass. */
static void test_submit_batch(void **state)
{
	for (unsigned int batch = 0; batch <= 1; batch++) {
		struct aiol_loop_opts o = { .submit_batch = batch };
		struct aiol_loop *loop;
		struct nop_ev n = { .ev.fn = nop_done };
		struct submit_work a = { .w.fn = submit_fn, .ev = &n };
		struct submit_work b = { .w.fn = check_fn };

		(void)state;
		assert_int_equal(aiol_loop_create(&o, &loop), 0);
		a.loop = b.loop = loop;
		/* let the eventfd read that create armed go out first */
		assert_true(aiol_loop_run_once(loop, false) >= 0);
		aiol_loop_defer(loop, &a.w);
		aiol_loop_defer(loop, &b.w);
		assert_true(aiol_loop_run_once(loop, false) >= 2);
		assert_int_equal(b.ready_after, batch ? 0 : 1);
		while (!n.calls)
			assert_true(aiol_loop_run_once(loop, true) >= 0);
		assert_int_equal(n.res, 0);
		aiol_loop_destroy(loop);
	}
}

static void *late_post_thread(void *arg)
{
	struct poster *p = arg;

	usleep(20000);	/* well after the polling window */
	aiol_loop_post(p->loop, &p->c[0].w);
	return NULL;
}

/* A polling loop sees completions inside its window (the kernel's task work
 * run on its behalf) and after it (asleep), and is woken by a post. */
static void test_poll(void **state)
{
	struct aiol_loop_opts o = { .poll_us = 2000 };
	struct aiol_loop *loop;
	static struct poster p;
	int log[1], n = 0;
	pthread_t t;
	/* timeouts of 200 us and 30 ms: inside and beyond the 2 ms window */
	static const long timeout_ns[] = { 200000, 30000000 };

	(void)state;
	assert_int_equal(aiol_loop_create(&o, &loop), 0);
	for (unsigned int i = 0; i < 2; i++) {
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = timeout_ns[i] };
		struct nop_ev ev = { .ev.fn = nop_done };

		io_uring_prep_timeout(aiol_loop_sqe(loop, &ev.ev), &ts, 0, 0);
		while (!ev.calls)
			assert_true(aiol_loop_run_once(loop, true) >= 0);
		assert_int_equal(ev.res, -ETIME);
	}
	p.loop = loop;
	p.c[0] = (struct counter){ .w.fn = count_fn, .log = log, .n = &n, .id = 7 };
	assert_int_equal(pthread_create(&t, NULL, late_post_thread, &p), 0);
	while (n < 1)
		assert_true(aiol_loop_run_once(loop, true) >= 0);
	pthread_join(t, NULL);
	assert_int_equal(log[0], 7);
	aiol_loop_destroy(loop);
}

struct tstate {
	struct aiol_timer t;
	int calls;
	int res;
	uint64_t at_ns;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void timer_fn(struct aiol_timer *t, int res)
{
	struct tstate *s = (struct tstate *)t;

	s->calls++;
	s->res = res;
	s->at_ns = mono_ns();
}

/* Two timers started out of order fire in deadline order, each once,
 * with 0, and not before their time. */
static void test_timer_expires(void **state)
{
	struct aiol_loop *loop;
	struct tstate a = { .t.fn = timer_fn }, b = { .t.fn = timer_fn };
	uint64_t start;

	(void)state;
	assert_int_equal(aiol_loop_create(NULL, &loop), 0);
	start = mono_ns();
	aiol_timer_start(loop, &a.t, 30000000);	/* 30 ms */
	aiol_timer_start(loop, &b.t, 10000000);	/* 10 ms */
	assert_true(aiol_timer_armed(&a.t));
	while (!a.calls)
		assert_true(aiol_loop_run_once(loop, true) >= 0);
	assert_int_equal(b.calls, 1);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.res, 0);
	assert_int_equal(b.res, 0);
	assert_true(b.at_ns - start >= 10000000);
	assert_true(a.at_ns - start >= 30000000);
	assert_true(b.at_ns <= a.at_ns);
	assert_false(aiol_timer_armed(&a.t));
	/* Once fired, a timer can be started again. */
	aiol_timer_start(loop, &a.t, 1000000);
	while (a.calls < 2)
		assert_true(aiol_loop_run_once(loop, true) >= 0);
	assert_int_equal(a.res, 0);
	aiol_loop_destroy(loop);
}

/* A cancelled timer reports -ECANCELED long before its deadline;
 * cancelling an idle timer does nothing. */
static void test_timer_cancel(void **state)
{
	struct aiol_loop *loop;
	struct tstate a = { .t.fn = timer_fn };
	uint64_t start;

	(void)state;
	assert_int_equal(aiol_loop_create(NULL, &loop), 0);
	aiol_timer_cancel(loop, &a.t);	/* not armed: nothing */
	start = mono_ns();
	aiol_timer_start(loop, &a.t, 10ull * 1000000000u);	/* 10 s */
	assert_true(aiol_loop_run_once(loop, false) >= 0);
	aiol_timer_cancel(loop, &a.t);
	while (!a.calls)
		assert_true(aiol_loop_run_once(loop, true) >= 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.res, -ECANCELED);
	assert_true(a.at_ns - start < 5ull * 1000000000u);
	assert_false(aiol_timer_armed(&a.t));
	aiol_loop_destroy(loop);
}

struct rd {
	struct aiol_event ev;
	int res;
	int calls;
};

static void rd_done(struct aiol_event *ev, int res, unsigned int flags)
{
	struct rd *r = (struct rd *)ev;

	(void)flags;
	r->res = res;
	r->calls++;
}

/* A read of an empty pipe bounded by a 20 ms deadline ends with
 * -ECANCELED; one whose data is there completes normally. */
static void test_link_timeout(void **state)
{
	struct aiol_loop *loop;
	struct __kernel_timespec ts;
	struct rd r = { .ev.fn = rd_done };
	struct io_uring_sqe *sqe;
	char buf[8];
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(aiol_loop_create(NULL, &loop), 0);
	aiol_loop_sq_reserve(loop, 2);
	sqe = aiol_loop_sqe(loop, &r.ev);
	io_uring_prep_read(sqe, fds[0], buf, sizeof(buf), 0);
	aiol_loop_link_timeout(loop, sqe, &ts, 20000000);
	while (!r.calls)
		assert_true(aiol_loop_run_once(loop, true) >= 0);
	assert_int_equal(r.res, -ECANCELED);

	assert_int_equal(write(fds[1], "abc", 3), 3);
	aiol_loop_sq_reserve(loop, 2);
	sqe = aiol_loop_sqe(loop, &r.ev);
	io_uring_prep_read(sqe, fds[0], buf, sizeof(buf), 0);
	aiol_loop_link_timeout(loop, sqe, &ts, 10ull * 1000000000u);
	while (r.calls < 2)
		assert_true(aiol_loop_run_once(loop, true) >= 0);
	assert_int_equal(r.res, 3);
	/* Let the timeout's own (dropped) completion come back. */
	for (int i = 0; i < 10; i++)
		aiol_loop_run_once(loop, false);
	close(fds[0]);
	close(fds[1]);
	aiol_loop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defer_fifo),
		cmocka_unit_test(test_post_cross_thread),
		cmocka_unit_test(test_arena_bounds),
		cmocka_unit_test(test_arena_by_need),
		cmocka_unit_test(test_ring_event),
		cmocka_unit_test(test_submit_batch),
		cmocka_unit_test(test_poll),
		cmocka_unit_test(test_timer_expires),
		cmocka_unit_test(test_timer_cancel),
		cmocka_unit_test(test_link_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
