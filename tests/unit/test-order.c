// SPDX-License-Identifier: MIT
/*
 * Unit tests of the write ordering (lib/order.h) on real loops but without
 * any I/O: within a queue, shared entries never wait for each other, a
 * read-modify-write waits for earlier overlapping writes and later ones
 * wait for it, in submission order, and a waiting entry blocks later
 * overlapping ones; across queues, an entry granted in its own queue waits
 * for a stripe another holds and is resumed, with no timer, when it is
 * given back.  The threaded case (run it under TSan too) has two queues
 * rewriting the same partial block and a third writing the aligned range
 * around it: exclusive holders never overlap with anyone, and nobody is
 * left waiting.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "aioloop/loop.h"
#include "order.h"

struct ent {
	struct ord_entry e;
	int granted;  /* times granted() ran */
	int *log, *n; /* order of grants */
	int id;
};

static void granted_fn(struct ord_entry *e)
{
	struct ent *x = (struct ent *)e;

	x->granted++;
	if (x->log)
		x->log[(*x->n)++] = x->id;
}

static void ent_init(struct ent *x, int id, int *log, int *n)
{
	*x = (struct ent){.e.granted = granted_fn, .log = log, .n = n, .id = id};
}

/* Run the loop until nothing more happens (a few idle passes). */
static void settle(struct aiol_loop *loop)
{
	for (int idle = 0; idle < 5;) {
		int r = aiol_loop_run_once(loop, false);

		assert_true(r >= 0);
		if (r == 0) {
			idle++;
			usleep(1000);
		} else {
			idle = 0;
		}
	}
}

struct fix {
	struct aiol_loop *loop;
	struct ord_dev *od;
	struct ord_queue q;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (!f || aiol_loop_create(NULL, &f->loop) < 0 || ord_dev_create(&f->od) < 0)
		return -1;
	ord_queue_init(&f->q, f->od, f->loop, 512);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	ord_dev_destroy(f->od);
	aiol_loop_destroy(f->loop);
	free(f);
	return 0;
}

/* Shared entries over the same range are all granted at once. */
static void test_shared_never_wait(void **state)
{
	struct fix *f = *state;
	struct ent a, b, c;

	ent_init(&a, 1, NULL, NULL);
	ent_init(&b, 2, NULL, NULL);
	ent_init(&c, 3, NULL, NULL);
	assert_true(ord_acquire(&f->q, &a.e, 0, 4096, false));
	assert_true(ord_acquire(&f->q, &b.e, 0, 4096, false));
	assert_true(ord_acquire(&f->q, &c.e, 1024, 100, false));
	ord_release(&b.e);
	ord_release(&a.e);
	ord_release(&c.e);
	settle(f->loop);
	assert_int_equal(a.granted + b.granted + c.granted, 0); /* never "later" */
}

/* An RMW waits for an earlier overlapping write; later overlapping writes
 * wait for it and are resumed in submission order; a write elsewhere goes
 * at once. */
static void test_rmw_order(void **state)
{
	struct fix *f = *state;
	struct ent w0, rmw, w1, w2, far;
	int log[8], n = 0;

	ent_init(&w0, 0, log, &n);
	ent_init(&rmw, 1, log, &n);
	ent_init(&w1, 2, log, &n);
	ent_init(&w2, 3, log, &n);
	ent_init(&far, 4, log, &n);
	assert_true(ord_acquire(&f->q, &w0.e, 0, 1024, false));
	/* [600, 700) rewrites the block [512, 1024): overlaps w0. */
	assert_false(ord_acquire(&f->q, &rmw.e, 600, 100, true));
	assert_false(ord_acquire(&f->q, &w1.e, 512, 512, false));
	assert_false(ord_acquire(&f->q, &w2.e, 1000, 100, false)); /* inside the RMW's block */
	assert_true(ord_acquire(&f->q, &far.e, 1u << 20, 4096, false));
	settle(f->loop);
	assert_int_equal(n, 0);
	ord_release(&w0.e);
	settle(f->loop);
	assert_int_equal(n, 1);
	assert_int_equal(log[0], 1); /* the RMW, and nobody else yet */
	ord_release(&rmw.e);
	settle(f->loop);
	assert_int_equal(n, 3);
	assert_int_equal(log[1], 2);
	assert_int_equal(log[2], 3);
	ord_release(&w1.e);
	ord_release(&w2.e);
	ord_release(&far.e);
	assert_int_equal(rmw.granted, 1);
	assert_int_equal(w1.granted, 1);
	assert_int_equal(w2.granted, 1);
}

/* RMWs of the same block go one after the other, in order. */
static void test_rmw_fifo(void **state)
{
	struct fix *f = *state;
	struct ent r[4];
	int log[8], n = 0;

	for (int i = 0; i < 4; i++)
		ent_init(&r[i], i, log, &n);
	assert_true(ord_acquire(&f->q, &r[0].e, 10, 10, true));
	for (int i = 1; i < 4; i++)
		assert_false(ord_acquire(&f->q, &r[i].e, 10 + (uint64_t)i * 100, 10, true));
	for (int i = 0; i < 3; i++) {
		ord_release(&r[i].e);
		settle(f->loop);
		assert_int_equal(n, i + 1);
		assert_int_equal(log[i], i + 1);
	}
	ord_release(&r[3].e);
}

/*
 * Both levels in one queue: the RMW is granted in the list once the
 * overlapping write leaves, but the stripe of its partial block is still
 * held (shared) by a write further on, so it waits for that stripe and is
 * resumed when the write gives it back, without any timer; a later write
 * overlapping the waiting RMW waits behind it.
 */
static void test_stripe_wait(void **state)
{
	struct fix *f = *state;
	struct ent a, rmw, c, d;
	int log[8], n = 0;

	ent_init(&a, 0, log, &n);
	ent_init(&rmw, 1, log, &n);
	ent_init(&c, 2, log, &n);
	ent_init(&d, 3, log, &n);
	assert_true(ord_acquire(&f->q, &a.e, 0, 1000, false));
	assert_false(ord_acquire(&f->q, &rmw.e, 600, 100, true)); /* [512, 1024) */
	assert_true(ord_acquire(&f->q, &c.e, 2048, 1024, false)); /* same stripe, no overlap */
	assert_false(ord_acquire(&f->q, &d.e, 700, 100, false));  /* behind the RMW */
	ord_release(&a.e);
	settle(f->loop);
	assert_int_equal(n, 0); /* granted in the list, waiting for c's stripe */
	ord_release(&c.e);
	settle(f->loop);
	assert_int_equal(n, 1);
	assert_int_equal(log[0], 1);
	ord_release(&rmw.e);
	settle(f->loop);
	assert_int_equal(n, 2);
	assert_int_equal(log[1], 3);
	ord_release(&d.e);
}

/* ---- across threads ---- */

#define ITERS 3000

struct shared {
	struct ord_dev *od;
	atomic_int excl_owner; /* id of the exclusive holder, 0: none */
	atomic_int shared_holders;
	atomic_int errors;
	atomic_int done;
	/* Every ring exists before any thread starts, and none goes before all
	 * are done: a thread's ring is never mapped where another thread's
	 * ring was (TSan cannot see liburing's munmap and would report the
	 * new ring's first SQE as a race), and no loop goes while another
	 * thread may still post to it. */
	pthread_barrier_t ready, end;
};

struct worker {
	struct shared *sh;
	int id;
	bool rmw;
	struct ent x;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	struct aiol_loop *loop;
	struct ord_queue q;

	if (aiol_loop_create(NULL, &loop) < 0) {
		atomic_fetch_add(&sh->errors, 1);
		pthread_barrier_wait(&sh->ready);
		pthread_barrier_wait(&sh->end);
		return NULL;
	}
	pthread_barrier_wait(&sh->ready);
	ord_queue_init(&q, sh->od, loop, 512);
	for (int i = 0; i < ITERS; i++) {
		ent_init(&w->x, w->id, NULL, NULL);
		/* The RMWs rewrite the block [0, 512); the aligned writer
		 * writes [0, 4096) around it. */
		if (!ord_acquire(&q, &w->x.e, w->rmw ? 100 : 0, w->rmw ? 50 : 4096, w->rmw))
			while (!w->x.granted)
				if (aiol_loop_run_once(loop, true) < 0)
					atomic_fetch_add(&sh->errors, 1);
		if (w->rmw) {
			int none = 0;

			if (!atomic_compare_exchange_strong(&sh->excl_owner, &none, w->id))
				atomic_fetch_add(&sh->errors, 1);
			if (atomic_load(&sh->shared_holders))
				atomic_fetch_add(&sh->errors, 1);
			sched_yield();
			atomic_store(&sh->excl_owner, 0);
		} else {
			atomic_fetch_add(&sh->shared_holders, 1);
			if (atomic_load(&sh->excl_owner))
				atomic_fetch_add(&sh->errors, 1);
			sched_yield();
			atomic_fetch_sub(&sh->shared_holders, 1);
		}
		ord_release(&w->x.e);
		aiol_loop_run_once(loop, false);
	}
	atomic_fetch_add(&sh->done, 1);
	pthread_barrier_wait(&sh->end);
	aiol_loop_destroy(loop);
	return NULL;
}

static void test_cross_thread(void **state)
{
	struct shared sh = {0};
	struct worker w[3];
	pthread_t th[3];

	(void)state;
	assert_int_equal(ord_dev_create(&sh.od), 0);
	pthread_barrier_init(&sh.ready, NULL, 3);
	pthread_barrier_init(&sh.end, NULL, 3);
	for (int i = 0; i < 3; i++) {
		w[i] = (struct worker){.sh = &sh, .id = i + 1, .rmw = i < 2};
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(atomic_load(&sh.errors), 0);
	assert_int_equal(atomic_load(&sh.done), 3);
	pthread_barrier_destroy(&sh.ready);
	pthread_barrier_destroy(&sh.end);
	ord_dev_destroy(sh.od);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_shared_never_wait, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rmw_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rmw_fifo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stripe_wait, setup, teardown),
	    cmocka_unit_test(test_cross_thread),
	};

	alarm(100); /* a lost wake-up hangs: fail instead */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
