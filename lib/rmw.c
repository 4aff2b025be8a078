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
 * Scope: the lock list is per queue, that is per thread.  Two queues of
 * the same dev (two threads, two NBD connections) do not order their
 * writes against each other: an unaligned write on one queue and an
 * overlapping write of the same block on another may lose one of the two.
 * A client that needs that across connections must write whole blocks (the
 * frontends advertise dio_align as the preferred block size).
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
 * Thread model: loop thread only.
 */
#include <errno.h>
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

static void lock_resume_work(struct aiol_work *w)
{
	struct eng_priv *p = (struct eng_priv *)(void *)((char *)w - __builtin_offsetof(struct eng_priv, work));

	eng_resume(eng_req_of_priv(p));
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
	if ((!rmw && q->lk_excl_count == 0) || !lk_blocked(p)) {
		p->lk_granted = true;
		return true;
	}
	AIOL_DEBUG_DATA("req %p waits for an overlapping write", (void *)req);
	return false;
}

void eng_unlock(struct aiol_queue *q, struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	bool was_excl = p->lk_excl;

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
	struct eng_priv *p = (struct eng_priv *)(void *)((char *)w - __builtin_offsetof(struct eng_priv, work));

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
