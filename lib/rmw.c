// SPDX-License-Identifier: MIT
/*
 * Unaligned I/O on an O_DIRECT backing, and the ordering of writes that it
 * needs.
 *
 * A request whose offset or length is not a multiple of the direct I/O
 * alignment (dio_align), or whose buffer is not aligned to dio_mem_align,
 * goes through a bounce buffer taken from the loop's arena, in steps of at
 * most ENG_CHUNK bytes so that a 64 MiB request never needs 64 MiB of
 * bounce:
 *   read:  read the aligned superset of the step into the bounce, copy out;
 *   write: read the partial first and last blocks of the step (only the
 *          first step can start and only the last can end mid-block), copy
 *          the caller's data (or zeroes, for write-zeroes done by writing)
 *          in, write the aligned superset.
 * Aligned requests with aligned buffers never come here and are never
 * copied.
 *
 * Ordering.  A read-modify-write writes back bytes it did not receive, so
 * it must not overlap any other write that is in flight: an RMW waits for
 * overlapping writes submitted before it, and writes (aligned ones,
 * discards and write-zeroes included) submitted after it wait for it when
 * they overlap its aligned extent.  Each write-like request of a direct dev
 * enters the queue's lock list in submission order with its range: RMWs
 * exclusive over the aligned superset, everything else shared over its own
 * range.  An entry is granted when no earlier entry (granted or waiting)
 * overlaps it with either of the two exclusive; entries leave the list when
 * their request finishes, and waiting entries are then re-checked in order.
 * Shared entries never conflict with each other, so when no RMW is queued
 * an aligned write is granted at once, in O(1).
 *
 * Across queues (threads) of the same dev, without a lock: the dev has
 * ENG_STRIPES atomic words, one per stripe of 64 KiB granules (granule
 * number modulo ENG_STRIPES).  Once its entry is granted in its own queue's
 * list, a write-like request takes, all or nothing, the stripes of its
 * range: exclusively the stripes of the partial first and last blocks of a
 * read-modify-write (the only bytes it writes back without having been
 * given them), shared all the others.  A shared hold is one fetch_add; a
 * word with an exclusive holder or waiter refuses shared holds; an
 * exclusive hold needs a word with no holder, and marks the word pending
 * when it has to wait so that new shared holds stop coming.  A request that
 * cannot take its stripes gives back what it took and tries again after a
 * 50 us timeout on the loop ring, so no thread ever blocks or holds while
 * waiting, and no lock is taken on the aligned path.  Across queues this
 * gives atomicity (no write is lost), not an order: writes of different
 * connections have none.  The stripes belong to one struct aiol_dev: two
 * aiol_dev_open() of the same file, or other processes writing it, are
 * not covered.
 *
 * Bounce memory.  The bounce is taken from the arena once per request (its
 * size is the request's aligned superset, at most ENG_CHUNK + dio_align)
 * and kept until the request finishes.  When the arena has no room the
 * request uses the queue's reserve bounce buffer (allocated at
 * aiol_queue_create), and when that is busy too it waits in a queue-local
 * list that is woken whenever a bounce of this queue is given back.  The
 * reserve guarantees progress even if the arena is filled by buffers that
 * are waiting for this queue's requests.
 *
 * Thread model: loop thread only, except the dev's stripe words, which
 * are atomics shared by the queues of all threads.
 */
#include <errno.h>
#include <liburing.h>
#include <string.h>

#include "aioloop/log.h"
#include "engine_internal.h"

/* Steps of a read-modify-write (eng_priv.rstage). */
enum {
	R_CHUNK = 0,	/* start the next step */
	R_HEAD,		/* reading the first partial block */
	R_TAIL,		/* reading the last partial block */
	R_WRITE,	/* writing the step */
	R_READ,		/* reading the step (read requests) */
};

bool eng_rmw_needed(const struct aiol_queue *q, const struct aiol_req *req)
{
	const struct aiol_dev_info *info = &q->dev->info;
	uint64_t a = info->dio_align;

	if (!info->direct)
		return false;
	switch (req->op) {
	case AIOL_OP_READ:
	case AIOL_OP_WRITE:
		return ((req->off | req->len) & (a - 1)) ||
		       ((uintptr_t)req->buf & (info->dio_mem_align - 1));
	case AIOL_OP_WRITE_ZEROES:
		return (req->off | req->len) & (a - 1);
	default:
		return false;
	}
}

/* ---- range locks ---- */

static bool lk_conflict(const struct eng_priv *a, const struct eng_priv *b)
{
	return (a->lk_excl || b->lk_excl) && a->lk_start < b->lk_end && b->lk_start < a->lk_end;
}

/* Does an entry earlier than p in the list conflict with it? */
static bool lk_blocked(struct eng_priv *p)
{
	for (struct aiol_req *r = p->lk_prev; r; r = eng_priv(r)->lk_prev)
		if (lk_conflict(eng_priv(r), p))
			return true;
	return false;
}

/* ---- dev-wide stripes ---- */

#define SW_EXCL	 (1u << 31)
#define SW_PEND	 (1u << 30)
#define SW_COUNT 0x00ffffffu

static uint32_t stripe_of(uint64_t off)
{
	return (uint32_t)((off >> ENG_STRIPE_SHIFT) % ENG_STRIPES);
}

static bool is_excl_stripe(const struct eng_priv *p, uint32_t s)
{
	for (unsigned int i = 0; i < p->st_nexcl; i++)
		if (p->st_excl[i] == s)
			return true;
	return false;
}

/* Give back the shared holds on the first n stripes of p's range, then
 * the first nexcl exclusive ones. */
static void stripes_put(struct aiol_dev *dev, struct eng_priv *p, uint64_t n, unsigned int nexcl)
{
	uint32_t s = stripe_of(p->lk_start);

	for (uint64_t i = 0; i < n; i++, s = (s + 1) % ENG_STRIPES)
		if (!is_excl_stripe(p, s))
			__atomic_fetch_sub(&dev->stripes[s], 1, __ATOMIC_RELEASE);
	for (unsigned int i = 0; i < nexcl; i++)
		__atomic_fetch_and(&dev->stripes[p->st_excl[i]], ~SW_EXCL, __ATOMIC_RELEASE);
}

static uint64_t stripe_count(const struct eng_priv *p)
{
	uint64_t n = ((p->lk_end - 1) >> ENG_STRIPE_SHIFT) - (p->lk_start >> ENG_STRIPE_SHIFT) + 1;

	return n < ENG_STRIPES ? n : ENG_STRIPES;
}

/* Take all of p's stripes or none.  Returns true when held. */
static bool stripes_get(struct aiol_dev *dev, struct eng_priv *p)
{
	uint64_t n = stripe_count(p), i;
	unsigned int e;
	uint32_t s;

	for (e = 0; e < p->st_nexcl; e++) {
		uint32_t *w = &dev->stripes[p->st_excl[e]];
		uint32_t v = __atomic_load_n(w, __ATOMIC_RELAXED);

		do {
			if (v & (SW_EXCL | SW_COUNT)) {
				__atomic_fetch_or(w, SW_PEND, __ATOMIC_RELAXED);
				stripes_put(dev, p, 0, e);
				return false;
			}
		} while (!__atomic_compare_exchange_n(w, &v, SW_EXCL, true, __ATOMIC_ACQ_REL,
						      __ATOMIC_RELAXED));
	}
	s = stripe_of(p->lk_start);
	for (i = 0; i < n; i++, s = (s + 1) % ENG_STRIPES) {
		uint32_t v;

		if (is_excl_stripe(p, s))
			continue;
		v = __atomic_fetch_add(&dev->stripes[s], 1, __ATOMIC_ACQ_REL);
		if (v & (SW_EXCL | SW_PEND)) {
			__atomic_fetch_sub(&dev->stripes[s], 1, __ATOMIC_RELEASE);
			stripes_put(dev, p, i, p->st_nexcl);
			return false;
		}
	}
	p->st_held = true;
	return true;
}

static void stripe_retry_cb(struct aiol_event *ev, int res, unsigned int flags);

/* The queue's list granted req: take the stripes now or retry later.
 * Returns true when req may go. */
static bool stripes_try(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	struct aiol_queue *q = p->q;
	struct io_uring_sqe *sqe;

	if (stripes_get(q->dev, p))
		return true;
	AIOL_DEBUG_DATA("req %p waits for a stripe held by another queue", (void *)req);
	p->ev.fn = stripe_retry_cb;
	sqe = aiol_loop_sqe(q->loop, &p->ev);
	io_uring_prep_timeout(sqe, &q->stripe_retry, 0, 0);
	return false;
}

static void stripe_retry_cb(struct aiol_event *ev, int res, unsigned int flags)
{
	struct eng_priv *p = aiol_container_of(ev, struct eng_priv, ev);
	struct aiol_req *req = eng_req_of_priv(p);

	(void)res;
	(void)flags;
	if (stripes_try(req))
		eng_resume(req);
}

static void lock_resume_work(struct aiol_work *w)
{
	struct eng_priv *p = aiol_container_of(w, struct eng_priv, work);
	struct aiol_req *req = eng_req_of_priv(p);

	if (stripes_try(req))
		eng_resume(req);
}

bool eng_lock(struct aiol_queue *q, struct aiol_req *req, bool rmw)
{
	struct eng_priv *p = eng_priv(req);
	uint64_t a = q->dev->info.dio_align;

	if (!q->dev->info.direct)
		return true;	/* no RMW on a buffered dev: nothing to order */
	p->lk_excl = rmw;
	p->lk_start = rmw ? eng_align_down(req->off, a) : req->off;
	p->lk_end = rmw ? eng_align_up(req->off + req->len, a) : req->off + req->len;
	p->lk_held = true;
	p->lk_next = NULL;
	p->lk_prev = q->lk_tail;
	if (q->lk_tail)
		eng_priv(q->lk_tail)->lk_next = req;
	else
		q->lk_head = req;
	q->lk_tail = req;
	if (rmw)
		q->lk_excl_count++;
	/* The partial first and last blocks are what an RMW writes back
	 * without owning: those stripes are taken exclusively. */
	p->st_nexcl = 0;
	if (rmw && req->off != p->lk_start)
		p->st_excl[p->st_nexcl++] = (uint16_t)stripe_of(p->lk_start);
	if (rmw && req->off + req->len != p->lk_end &&
	    !is_excl_stripe(p, stripe_of(p->lk_end - a)))
		p->st_excl[p->st_nexcl++] = (uint16_t)stripe_of(p->lk_end - a);
	if ((!rmw && q->lk_excl_count == 0) || !lk_blocked(p)) {
		p->lk_granted = true;
		return stripes_try(req);
	}
	AIOL_DEBUG_DATA("req %p waits for an overlapping write", (void *)req);
	return false;
}

void eng_unlock(struct aiol_queue *q, struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	bool was_excl = p->lk_excl;

	if (p->st_held) {
		stripes_put(q->dev, p, stripe_count(p), p->st_nexcl);
		p->st_held = false;
	}
	if (p->lk_prev)
		eng_priv(p->lk_prev)->lk_next = p->lk_next;
	else
		q->lk_head = p->lk_next;
	if (p->lk_next)
		eng_priv(p->lk_next)->lk_prev = p->lk_prev;
	else
		q->lk_tail = p->lk_prev;
	p->lk_held = false;
	p->lk_granted = false;
	p->lk_prev = p->lk_next = NULL;
	if (was_excl)
		q->lk_excl_count--;
	/* Waiters exist only while an exclusive entry is (or was) listed. */
	if (!was_excl && q->lk_excl_count == 0)
		return;
	for (struct aiol_req *r = q->lk_head; r; r = eng_priv(r)->lk_next) {
		struct eng_priv *rp = eng_priv(r);

		if (rp->lk_granted || lk_blocked(rp))
			continue;
		rp->lk_granted = true;
		rp->work.fn = lock_resume_work;
		aiol_loop_defer(q->loop, &rp->work);
	}
}

/* ---- bounce buffers ---- */

static void bounce_retry_work(struct aiol_work *w);

static bool get_bounce(struct aiol_req *req, uint32_t len)
{
	struct eng_priv *p = eng_priv(req);
	struct aiol_queue *q = p->q;

	p->bounce = aiol_loop_buf_alloc(q->loop, len);
	if (p->bounce) {
		p->bounce_len = len;
		p->bounce_reserve = false;
		return true;
	}
	if (!q->reserve_busy) {
		q->reserve_busy = true;
		p->bounce = q->reserve;
		p->bounce_len = len;
		p->bounce_reserve = true;
		return true;
	}
	p->next = NULL;
	if (q->reserve_wait_tail)
		eng_priv(q->reserve_wait_tail)->next = req;
	else
		q->reserve_wait_head = req;
	q->reserve_wait_tail = req;
	AIOL_DEBUG_DATA("req %p waits for bounce memory", (void *)req);
	return false;
}

void eng_rmw_release(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	struct aiol_queue *q = p->q;
	struct aiol_req *w;

	if (!p->bounce)
		return;
	if (p->bounce_reserve)
		q->reserve_busy = false;
	else
		aiol_loop_buf_free(q->loop, p->bounce, p->bounce_len);
	p->bounce = NULL;
	p->bounce_len = 0;
	/* Wake every waiter; each retries and re-queues itself. */
	w = q->reserve_wait_head;
	q->reserve_wait_head = q->reserve_wait_tail = NULL;
	while (w) {
		struct eng_priv *wp = eng_priv(w);
		struct aiol_req *n = wp->next;

		wp->next = NULL;
		wp->work.fn = bounce_retry_work;
		aiol_loop_defer(q->loop, &wp->work);
		w = n;
	}
}

/* ---- the steps ---- */

static void rmw_chunk(struct aiol_req *req);

static void bounce_retry_work(struct aiol_work *w)
{
	struct eng_priv *p = aiol_container_of(w, struct eng_priv, work);

	rmw_chunk(eng_req_of_priv(p));
}

static void rmw_io(struct aiol_req *req, unsigned int stage, uint8_t kind, uint64_t voff,
		   uint64_t len, void *buf)
{
	struct eng_priv *p = eng_priv(req);

	p->io.kind = kind;
	p->io.fua = kind == IO_WRITE && (req->flags & AIOL_F_FUA);
	p->io.mode = 0;
	p->rstage = (uint8_t)stage;
	p->io.off = p->q->dev->info.offset + voff;
	p->io.len = len;
	p->io.buf = buf;
	p->eagain = 0;
	eng_issue(req);
}

void eng_rmw_start(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);

	p->stage = ST_RMW;
	p->pos = 0;
	p->rstage = R_CHUNK;
	rmw_chunk(req);
}

/* Start the step at req->off + pos, or finish. */
static void rmw_chunk(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	uint64_t a = p->q->dev->info.dio_align;
	uint64_t end = req->off + req->len, cur = req->off + p->pos, ce, as, ae;

	if (cur == end) {
		eng_finish(req, 0);
		return;
	}
	if (!p->bounce) {
		uint64_t whole = eng_align_up(end, a) - eng_align_down(req->off, a);
		uint64_t cap = ENG_CHUNK + a;

		if (!get_bounce(req, (uint32_t)(whole < cap ? whole : cap)))
			return;
	}
	ce = eng_align_down(cur + ENG_CHUNK, a);
	if (ce > end)
		ce = end;
	assert(ce > cur);
	p->chunk_end = ce;
	as = eng_align_down(cur, a);
	ae = eng_align_up(ce, a);
	assert(ae - as <= p->bounce_len);
	if (req->op == AIOL_OP_READ) {
		rmw_io(req, R_READ, IO_READ, as, ae - as, p->bounce);
		return;
	}
	if (cur != as) {
		rmw_io(req, R_HEAD, IO_READ, as, a, p->bounce);
		return;
	}
	eng_rmw_step(req, 0);	/* no head to read: on to the tail */
}

void eng_rmw_step(struct aiol_req *req, int res)
{
	struct eng_priv *p = eng_priv(req);
	uint64_t a = p->q->dev->info.dio_align;
	uint64_t cur = req->off + p->pos, ce = p->chunk_end;
	uint64_t as = eng_align_down(cur, a), ae = eng_align_up(ce, a);
	char *b = p->bounce;

	if (res < 0) {
		eng_finish(req, res);
		return;
	}
	switch (p->rstage) {
	case R_READ:
		memcpy((char *)req->buf + p->pos, b + (cur - as), ce - cur);
		p->pos += ce - cur;
		p->rstage = R_CHUNK;
		rmw_chunk(req);
		return;
	case R_CHUNK:
	case R_HEAD:
		/* The tail block, unless the head read already covered it. */
		if (ce != ae && !(cur != as && ae - a == as)) {
			rmw_io(req, R_TAIL, IO_READ, ae - a, a, b + (ae - a - as));
			return;
		}
		/* fall through */
	case R_TAIL:
		if (req->op == AIOL_OP_WRITE)
			memcpy(b + (cur - as), (const char *)req->buf + p->pos, ce - cur);
		else
			memset(b + (cur - as), 0, ce - cur);
		rmw_io(req, R_WRITE, IO_WRITE, as, ae - as, b);
		return;
	case R_WRITE:
	default:
		p->pos += ce - cur;
		p->rstage = R_CHUNK;
		rmw_chunk(req);
		return;
	}
}
