// SPDX-License-Identifier: MIT
/*
 * Write ordering (order.h): a queue's list of write-like requests in
 * submission order, and the dev-wide stripe words with their waiters.
 * Depends on the loop only (to resume an entry on its own thread).
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "aioloop/log.h"
#include "order.h"

/* A stripe word: an exclusive holder, an exclusive one pending (new shared
 * holds refused), someone waiting for a release, and the shared holders. */
#define SW_EXCL (1u << 31)
#define SW_PEND (1u << 30)
#define SW_WAIT (1u << 29)
#define SW_COUNT 0x00ffffffu

struct ord_dev {
	uint32_t words[ORD_STRIPES];
	pthread_mutex_t mu;
	TAILQ_HEAD(, ord_entry) waiters; /* under mu */
};

int ord_dev_create(struct ord_dev **out)
{
	struct ord_dev *od = calloc(1, sizeof(*od));

	*out = NULL;
	if (!od)
		return -ENOMEM;
	pthread_mutex_init(&od->mu, NULL);
	TAILQ_INIT(&od->waiters);
	*out = od;
	return 0;
}

void ord_dev_destroy(struct ord_dev *od)
{
	if (!od)
		return;
	assert(TAILQ_EMPTY(&od->waiters));
	pthread_mutex_destroy(&od->mu);
	free(od);
}

void ord_queue_init(struct ord_queue *oq, struct ord_dev *od, struct aiol_loop *loop,
		    uint64_t align)
{
	oq->od = od;
	oq->loop = loop;
	oq->align = align;
	TAILQ_INIT(&oq->list);
	oq->excl_count = 0;
}

/* ---- the queue's list ---- */

static bool conflict(const struct ord_entry *a, const struct ord_entry *b)
{
	return (a->excl || b->excl) && a->start < b->end && b->start < a->end;
}

/* Does an entry earlier than e in its queue's list conflict with it? */
static bool blocked(const struct ord_entry *e)
{
	for (const struct ord_entry *r = TAILQ_PREV(e, ord_list, link); r;
	     r = TAILQ_PREV(r, ord_list, link))
		if (conflict(r, e))
			return true;
	return false;
}

/* ---- dev-wide stripes ---- */

static uint32_t stripe_of(uint64_t off)
{
	return (uint32_t)((off >> ORD_STRIPE_SHIFT) % ORD_STRIPES);
}

static uint64_t stripe_count(const struct ord_entry *e)
{
	uint64_t n = ((e->end - 1) >> ORD_STRIPE_SHIFT) - (e->start >> ORD_STRIPE_SHIFT) + 1;

	return n < ORD_STRIPES ? n : ORD_STRIPES;
}

static bool is_excl_stripe(const struct ord_entry *e, uint32_t s)
{
	for (unsigned int i = 0; i < e->st_nexcl; i++)
		if (e->st_excl[i] == s)
			return true;
	return false;
}

static void retry_work(struct aiol_work *w);

/* Resume the waiters of stripe s, whose word had SW_WAIT: they try again
 * on their own loops. */
static void wake_stripe(struct ord_dev *od, uint32_t s)
{
	struct ord_entry *e, *n;

	pthread_mutex_lock(&od->mu);
	__atomic_fetch_and(&od->words[s], ~SW_WAIT, __ATOMIC_SEQ_CST);
	for (e = TAILQ_FIRST(&od->waiters); e; e = n) {
		n = TAILQ_NEXT(e, wlink);
		if (e->wait_stripe != s)
			continue;
		TAILQ_REMOVE(&od->waiters, e, wlink);
		e->waiting = false;
		e->work.fn = retry_work;
		aiol_loop_post(e->oq->loop, &e->work);
	}
	pthread_mutex_unlock(&od->mu);
}

static void put_shared(struct ord_dev *od, uint32_t s)
{
	if (__atomic_fetch_sub(&od->words[s], 1, __ATOMIC_SEQ_CST) & SW_WAIT)
		wake_stripe(od, s);
}

static void put_excl(struct ord_dev *od, uint32_t s)
{
	if (__atomic_fetch_and(&od->words[s], ~SW_EXCL, __ATOMIC_SEQ_CST) & SW_WAIT)
		wake_stripe(od, s);
}

/* Give back the shared holds on the first n stripes of e's range, then
 * the first nexcl exclusive ones. */
static void stripes_put(struct ord_dev *od, struct ord_entry *e, uint64_t n, unsigned int nexcl)
{
	uint32_t s = stripe_of(e->start);

	for (uint64_t i = 0; i < n; i++, s = (s + 1) % ORD_STRIPES)
		if (!is_excl_stripe(e, s))
			put_shared(od, s);
	for (unsigned int i = 0; i < nexcl; i++)
		put_excl(od, e->st_excl[i]);
}

/* Take all of e's stripes or none.  Returns true when held; otherwise
 * *fail is the stripe that refused and *fail_excl whether e wanted it
 * exclusively. */
static bool stripes_get(struct ord_dev *od, struct ord_entry *e, uint32_t *fail, bool *fail_excl)
{
	uint64_t n = stripe_count(e), i;
	unsigned int x;
	uint32_t s;

	for (x = 0; x < e->st_nexcl; x++) {
		uint32_t *w = &od->words[e->st_excl[x]];
		uint32_t v = __atomic_load_n(w, __ATOMIC_RELAXED);

		do {
			if (v & (SW_EXCL | SW_COUNT)) {
				__atomic_fetch_or(w, SW_PEND, __ATOMIC_RELAXED);
				stripes_put(od, e, 0, x);
				*fail = e->st_excl[x];
				*fail_excl = true;
				return false;
			}
		} while (!__atomic_compare_exchange_n(w, &v, SW_EXCL | (v & SW_WAIT), true,
						      __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	}
	s = stripe_of(e->start);
	for (i = 0; i < n; i++, s = (s + 1) % ORD_STRIPES) {
		uint32_t v;

		if (is_excl_stripe(e, s))
			continue;
		v = __atomic_fetch_add(&od->words[s], 1, __ATOMIC_SEQ_CST);
		if (v & (SW_EXCL | SW_PEND)) {
			put_shared(od, s);
			stripes_put(od, e, i, e->st_nexcl);
			*fail = s;
			*fail_excl = false;
			return false;
		}
	}
	e->st_held = true;
	return true;
}

/*
 * Sleep on stripe s until a holder gives it back.  The word is marked
 * waited-for and checked again under the mutex: a release that came in
 * between is seen here (it changed the same word first) or sees the mark
 * (it changed the word after), so no wake-up is lost.  Returns false when
 * s is already free: the caller tries again.
 */
static bool wait_on(struct ord_dev *od, struct ord_entry *e, uint32_t s, bool excl)
{
	uint32_t v;
	bool busy;

	pthread_mutex_lock(&od->mu);
	v = __atomic_fetch_or(&od->words[s], SW_WAIT, __ATOMIC_SEQ_CST);
	busy = excl ? (v & (SW_EXCL | SW_COUNT)) : (v & (SW_EXCL | SW_PEND));
	if (busy) {
		e->waiting = true;
		e->wait_stripe = (uint16_t)s;
		TAILQ_INSERT_TAIL(&od->waiters, e, wlink);
	}
	pthread_mutex_unlock(&od->mu);
	return busy;
}

/* e is granted in its queue: take its stripes now (true) or arrange to
 * try again later (false). */
static bool stripes_try(struct ord_entry *e)
{
	struct ord_dev *od = e->oq->od;
	uint32_t s;
	bool excl;

	if (stripes_get(od, e, &s, &excl))
		return true;
	AIOL_DEBUG_DATA("write at %llu waits for a stripe held by another queue",
			(unsigned long long)e->start);
	if (!wait_on(od, e, s, excl)) {
		/* Freed meanwhile: try again at the loop's next iteration. */
		e->work.fn = retry_work;
		aiol_loop_defer(e->oq->loop, &e->work);
	}
	return false;
}

static void retry_work(struct aiol_work *w)
{
	struct ord_entry *e = aiol_container_of(w, struct ord_entry, work);

	if (stripes_try(e))
		e->granted(e);
}

/* ---- entering and leaving ---- */

bool ord_acquire(struct ord_queue *oq, struct ord_entry *e, uint64_t off, uint64_t len, bool rmw)
{
	uint64_t a = oq->align;

	assert(len > 0);
	e->oq = oq;
	e->excl = rmw;
	e->start = rmw ? off & ~(a - 1) : off;
	e->end = rmw ? (off + len + a - 1) & ~(a - 1) : off + len;
	e->held = true;
	e->granted_q = false;
	e->st_held = false;
	e->waiting = false;
	TAILQ_INSERT_TAIL(&oq->list, e, link);
	if (rmw)
		oq->excl_count++;
	/* The partial first and last blocks are what an RMW writes back
	 * without owning: those stripes are taken exclusively. */
	e->st_nexcl = 0;
	if (rmw && off != e->start)
		e->st_excl[e->st_nexcl++] = (uint16_t)stripe_of(e->start);
	if (rmw && off + len != e->end && !is_excl_stripe(e, stripe_of(e->end - a)))
		e->st_excl[e->st_nexcl++] = (uint16_t)stripe_of(e->end - a);
	if ((!rmw && oq->excl_count == 0) || !blocked(e)) {
		e->granted_q = true;
		return stripes_try(e);
	}
	AIOL_DEBUG_DATA("write at %llu waits for an overlapping write", (unsigned long long)off);
	return false;
}

void ord_release(struct ord_entry *e)
{
	struct ord_queue *oq = e->oq;
	bool was_excl = e->excl;
	struct ord_entry *r;

	assert(e->held && e->granted_q && !e->waiting);
	if (e->st_held) {
		stripes_put(oq->od, e, stripe_count(e), e->st_nexcl);
		e->st_held = false;
	}
	TAILQ_REMOVE(&oq->list, e, link);
	e->held = false;
	e->granted_q = false;
	if (was_excl)
		oq->excl_count--;
	/* Waiters exist only while an exclusive entry is (or was) listed. */
	if (!was_excl && oq->excl_count == 0)
		return;
	TAILQ_FOREACH(r, &oq->list, link)
	{
		if (r->granted_q || blocked(r))
			continue;
		r->granted_q = true;
		r->work.fn = retry_work;
		aiol_loop_defer(oq->loop, &r->work);
	}
}
