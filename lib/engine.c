// SPDX-License-Identifier: MIT
/*
 * The engine (see engine_internal.h for the whole flow): devs on stores,
 * queues, the one request validator, the per-op state machines that turn a
 * request into primitives on the store (with the dev offset added), the
 * handling every store shares (-EAGAIN resubmitted, short transfers
 * resubmitted for the rest, zero-byte reads are -EIO, errors passed on
 * unchanged), read-modify-write driven by the step function of rmw.c,
 * write ordering through order.c, the FIFO behind the queue depth, and
 * completion (inside the store's, or deferred to the next iteration).
 *
 * Block semantics follow the kernel loop driver: flush, FUA, discard
 * (deallocate), write-zeroes as a zero that keeps the allocation with
 * no-unmap and a discard without; when the store answers EOPNOTSUPP the
 * capability is cleared on the store and the dev, and write-zeroes falls
 * back (discard, zero, then writing zeroes from a zeroed buffer in
 * ENG_CHUNK steps unless fast-only was asked).
 *
 * Thread model: everything here runs on the queue's loop thread except
 * eng_cap_clear(), which updates the capability bits atomically, and the
 * control-path functions on devs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aioloop/crypt.h"
#include "aioloop/log.h"
#include "align.h"
#include "engine_internal.h"

/* Write-zeroes strategies (eng_priv.zmode). */
enum {
	ZM_PUNCH = 1,
	ZM_ZERO,
	ZM_WRITE,
};

static void eng_start(struct aiol_req *req);
static void eng_after_lock(struct aiol_req *req);
static void eng_finish(struct aiol_req *req, int res);

static uint32_t load_caps(const struct aiol_dev *dev)
{
	return __atomic_load_n(&dev->info.caps, __ATOMIC_RELAXED);
}

/* The public capabilities of a dev given its store's. */
static uint32_t dev_caps_of(bool read_only, uint32_t sc)
{
	uint32_t caps = 0;

	if (sc & AIOL_STORE_ROTATIONAL)
		caps |= AIOL_CAP_ROTATIONAL;
	if (sc & AIOL_STORE_EXTENTS)
		caps |= AIOL_CAP_BLOCK_STATUS;
	if (read_only)
		return caps;
	if (sc & AIOL_STORE_FLUSH)
		caps |= AIOL_CAP_FLUSH;
	if (sc & AIOL_STORE_FUA)
		caps |= AIOL_CAP_FUA;
	if (sc & AIOL_STORE_DISCARD)
		caps |= AIOL_CAP_DISCARD;
	if (sc & AIOL_STORE_DISCARD_NOZERO)
		sc &= ~AIOL_STORE_DISCARD; /* for write-zeroes */
	if (sc & (AIOL_STORE_DISCARD | AIOL_STORE_ZERO)) {
		caps |= AIOL_CAP_WRITE_ZEROES;
		if (sc & AIOL_STORE_FAST_ZERO)
			caps |= AIOL_CAP_FAST_ZERO;
	}
	return caps;
}

/* The store cannot do `sc` (AIOL_STORE_DISCARD or _ZERO): stop trying. */
static void eng_cap_clear(struct aiol_dev *dev, uint32_t sc)
{
	uint32_t old = aiol_store_cap_clear(dev->store, sc);
	uint32_t now = dev_caps_of(dev->info.read_only, aiol_store_caps(dev->store));

	__atomic_fetch_and(&dev->info.caps, now, __ATOMIC_RELAXED);
	if (old)
		aiol_warn("%s: the %s store cannot %s (EOPNOTSUPP): no longer used", dev->info.path,
			  dev->store->ops->name,
			  sc & AIOL_STORE_DISCARD ? "discard (punch holes)" : "zero ranges");
}

/* ---- devs ---- */

int aiol_dev_open(const char *path, const struct aiol_open_opts *opts, struct aiol_dev **out)
{
	struct aiol_store *st;
	int ret;

	*out = NULL;
	if (aiol_rbd_name(path))
		ret = aiol_rbd_store_open(path, opts, &st);
	else
		ret = aiol_file_store_open(path, opts, &st);
	if (ret < 0)
		return ret;
	if (opts->crypt) {
		struct aiol_store *file = st;

		ret = aiol_crypt_store_open(file, opts->crypt, &st);
		if (ret < 0)
			return ret; /* file closed by the stage */
	}
	return aiol_dev_open_store(st, out);
}

int aiol_dev_open_store(struct aiol_store *st, struct aiol_dev **out)
{
	struct aiol_dev *dev;
	int ret;

	*out = NULL;
	if (!is_pow2(st->info.dio_align) || !is_pow2(st->info.dio_mem_align) ||
	    st->info.dio_align > ENG_CHUNK || st->info.dio_mem_align > 4096 ||
	    !is_pow2(st->discard_align ? st->discard_align : 1)) {
		aiol_err("%s: the %s store asks for an unusable alignment %u/%u", st->info.path,
			 st->ops->name, st->info.dio_align, st->info.dio_mem_align);
		ret = -EINVAL;
		goto err_close;
	}
	if (!st->discard_align)
		st->discard_align = 1;
	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		ret = -ENOMEM;
		goto err_close;
	}
	dev->store = st;
	dev->info = st->info;
	dev->info.caps = dev_caps_of(st->info.read_only, aiol_store_caps(st));
	/* Read-modify-write (and so write ordering) only where the store
	 * needs alignment. */
	if (st->info.dio_align > 1 || st->info.dio_mem_align > 1) {
		ret = ord_dev_create(&dev->ord);
		if (ret < 0)
			goto err_free;
	}
	*out = dev;
	return 0;

err_free:
	free(dev);
err_close:
	st->ops->close(st);
	return ret;
}

void aiol_dev_close(struct aiol_dev *dev)
{
	if (!dev)
		return;
	ord_dev_destroy(dev->ord);
	dev->store->ops->close(dev->store);
	free(dev);
}

const struct aiol_dev_info *aiol_dev_info(const struct aiol_dev *dev)
{
	return &dev->info;
}

int aiol_dev_sync(struct aiol_dev *dev)
{
	return dev->store->ops->sync(dev->store);
}

int aiol_dev_refresh_size(struct aiol_dev *dev, uint64_t sizelimit, uint64_t *size_out)
{
	struct aiol_store *st = dev->store;
	uint64_t size;
	int ret;

	if (!st->ops->refresh_size) {
		aiol_err("%s: the %s store cannot change its size", dev->info.path, st->ops->name);
		return -EOPNOTSUPP;
	}
	ret = st->ops->refresh_size(st, sizelimit, &size);
	if (ret < 0)
		return ret;
	__atomic_store_n(&dev->info.backing_size,
			 __atomic_load_n(&st->info.backing_size, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
	/* Validation reads it with acquire (eng_validate). */
	__atomic_store_n(&dev->info.size, size, __ATOMIC_RELEASE);
	*size_out = size;
	return 0;
}

/* ---- queues ---- */

static void eng_release_held(struct aiol_store_queue *sq);

int aiol_queue_create(struct aiol_dev *dev, struct aiol_loop *loop,
		      const struct aiol_queue_opts *opts, struct aiol_queue **out)
{
	struct aiol_store *st;
	struct aiol_queue *q;
	int ret;

	*out = NULL;
	if (!dev || !loop)
		return -EINVAL;
	st = dev->store;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->dev = dev;
	q->loop = loop;
	STAILQ_INIT(&q->fifo);
	q->depth = opts && opts->depth ? opts->depth : 128;
	if (st->max_depth && q->depth > st->max_depth)
		q->depth = st->max_depth;
	if (!dev->info.read_only) {
		if (posix_memalign(&q->zbuf, 4096, ENG_CHUNK)) {
			ret = -ENOMEM;
			goto err_free;
		}
		memset(q->zbuf, 0, ENG_CHUNK);
	}
	if (dev->ord) {
		ord_queue_init(&q->ord, dev->ord, loop, dev->info.dio_align);
		/* The bounce of last resort, so that unaligned I/O always
		 * progresses even when the arena is full. */
		ret = bounce_pool_init(&q->bounce, loop, ENG_CHUNK + 2 * dev->info.dio_align);
		if (ret < 0)
			goto err_free;
	}
	ret = st->ops->queue_create(st, loop, q->depth, &q->sq);
	if (ret < 0)
		goto err_bounce;
	q->sq->idle = eng_release_held;
	q->sq->owner = q;
	*out = q;
	return 0;

err_bounce:
	if (dev->ord)
		bounce_pool_fini(&q->bounce);
err_free:
	free(q->zbuf);
	free(q);
	return ret;
}

void aiol_queue_destroy(struct aiol_queue *q)
{
	if (!q)
		return;
	q->dev->store->ops->queue_destroy(q->sq);
	if (q->dev->ord)
		bounce_pool_fini(&q->bounce);
	free(q->zbuf);
	free(q);
}

struct aiol_dev *aiol_queue_dev(struct aiol_queue *q)
{
	return q->dev;
}

struct aiol_loop *aiol_queue_loop(struct aiol_queue *q)
{
	return q->loop;
}

unsigned int aiol_queue_inflight(const struct aiol_queue *q)
{
	return q->outstanding;
}

bool aiol_dev_fixed_buf_ok(const struct aiol_dev *dev, unsigned int len_align)
{
	if (!(aiol_store_caps(dev->store) & AIOL_STORE_FIXED_BUF) || !len_align)
		return false;
	/* Nothing aligned to len_align may need a read-modify-write. */
	return len_align % dev->info.dio_align == 0;
}

/* ---- validation ---- */

static bool eng_rmw_needed(const struct aiol_queue *q, const struct aiol_req *req);

/*
 * The one validator.  Returns 1 to go on, 0 to complete at once with 0 (an
 * empty request), or the -errno to complete the request with.
 */
static int eng_validate(const struct aiol_queue *q, struct aiol_req *req)
{
	const struct aiol_dev *dev = q->dev;
	uint32_t caps = load_caps(dev);
	bool writes = false;
	uint64_t end;

	if (req->flags & ~(AIOL_F_FUA | AIOL_F_NO_UNMAP | AIOL_F_FAST_ONLY | AIOL_F_FIXED_BUF))
		return -EINVAL;
	/* A registered buffer of the kernel's: never bounced, and only to a
	 * store that takes it. */
	if ((req->flags & AIOL_F_FIXED_BUF) &&
	    ((req->op != AIOL_OP_READ && req->op != AIOL_OP_WRITE) ||
	     !(aiol_store_caps(dev->store) & AIOL_STORE_FIXED_BUF) || eng_rmw_needed(q, req)))
		return -EINVAL;
	switch (req->op) {
	case AIOL_OP_READ:
		if (!req->buf && req->len && !(req->flags & AIOL_F_FIXED_BUF))
			return -EINVAL;
		break;
	case AIOL_OP_WRITE:
		if (!req->buf && req->len && !(req->flags & AIOL_F_FIXED_BUF))
			return -EINVAL;
		writes = true;
		break;
	case AIOL_OP_FLUSH:
		return 1;	/* no range */
	case AIOL_OP_DISCARD:
		writes = true;
		if (!dev->info.read_only && !(caps & AIOL_CAP_DISCARD))
			return -EOPNOTSUPP;
		break;
	case AIOL_OP_WRITE_ZEROES:
		writes = true;
		if (!dev->info.read_only && (req->flags & AIOL_F_FAST_ONLY) &&
		    !(caps & AIOL_CAP_FAST_ZERO))
			return -EOPNOTSUPP;
		break;
	case AIOL_OP_BLOCK_STATUS:
		if (!(caps & AIOL_CAP_BLOCK_STATUS))
			return -EOPNOTSUPP;
		if (!req->ext || !req->ext_max)
			return -EINVAL;
		req->ext_count = 0;
		break;
	case AIOL_OP_CACHE:
		break;
	default:
		return -EINVAL;
	}
	if (writes && dev->info.read_only)
		return -EPERM;
	if (__builtin_add_overflow(req->off, req->len, &end) ||
	    end > __atomic_load_n(&dev->info.size, __ATOMIC_ACQUIRE))
		return writes && req->op != AIOL_OP_DISCARD ? -ENOSPC : -EINVAL;
	if (!req->len)
		return 0;
	return 1;
}

/* ---- completion ---- */

static bool store_busy(const struct aiol_queue *q)
{
	const struct aiol_store_ops *ops = q->dev->store->ops;

	return ops->busy && ops->busy(q->sq);
}

static void done_work(struct aiol_work *w)
{
	struct eng_priv *p = aiol_container_of(w, struct eng_priv, work);
	struct aiol_req *req = eng_req_of_priv(p);
	struct aiol_queue *q = p->q;
	int res = p->res;

	/* The last request's done() says the queue may be destroyed: hold it
	 * while the store still has something of its own on the ring. */
	if (q->outstanding == 1 && store_busy(q)) {
		assert(!q->held);
		q->held = req;
		return;
	}
	q->outstanding--;
	aiol_loop_inflight(q->loop, -1);
	AIOL_DEBUG_DATA("req %p op %u off %llu len %llu: %d", (void *)req, req->op,
			(unsigned long long)req->off, (unsigned long long)req->len, res);
	req->done(req, res);
}

/* The store is no longer busy: run the held done(), if any. */
static void eng_release_held(struct aiol_store_queue *sq)
{
	struct aiol_queue *q = sq->owner;
	struct aiol_req *req = q->held;

	if (!req)
		return;
	q->held = NULL;
	aiol_loop_defer(q->loop, &eng_priv(req)->work);
}

static void complete_later(struct aiol_req *req, int res)
{
	struct eng_priv *p = eng_priv(req);

	p->res = res;
	p->work.fn = done_work;
	aiol_loop_defer(p->q->loop, &p->work);
}

/* Start parked requests while the depth allows. */
static void eng_pump(struct aiol_queue *q)
{
	/* A request that finishes while it starts pumps again: let the
	 * outer call go on instead of recursing once per parked request. */
	if (q->pumping)
		return;
	q->pumping = true;
	while (!STAILQ_EMPTY(&q->fifo) && q->started < q->depth) {
		struct eng_priv *p = STAILQ_FIRST(&q->fifo);

		STAILQ_REMOVE_HEAD(&q->fifo, fifo);
		eng_start(eng_req_of_priv(p));
	}
	q->pumping = false;
}

static void eng_finish(struct aiol_req *req, int res)
{
	struct eng_priv *p = eng_priv(req);
	struct aiol_queue *q = p->q;

	if (p->bounce.buf)
		bounce_put(&q->bounce, &p->bounce);
	if (ord_held(&p->ord))
		ord_release(&p->ord);
	p->stage = ST_NONE;
	q->started--;
	/*
	 * Straight from the store's completion (not inside aiol_submit() or a
	 * pump), done() runs now rather than at the next iteration: a caller
	 * that resubmits from done() then has its next request on the ring
	 * before the rest of the batch of completions is worked through (a
	 * decrypting store spends a microsecond on each).  Not for the last
	 * request: its done() may destroy the queue, and this call's callers
	 * are still on their way back through it.
	 */
	if (q->completing && !q->submitting && !q->pumping && q->outstanding > 1) {
		eng_pump(q);
		p->res = res;
		done_work(&p->work);
		return;
	}
	complete_later(req, res);
	eng_pump(q);
}

static void io_done(struct aiol_store_io *io, int res);

int aiol_submit(struct aiol_queue *q, struct aiol_req *req)
{
	struct eng_priv *p;
	int ret;

	if (!q || !req || !req->done)
		return -EINVAL;
	p = eng_priv(req);
	memset(&req->_priv, 0, sizeof(req->_priv));
	p->q = q;
	p->io.done = io_done;
	q->outstanding++;
	aiol_loop_inflight(q->loop, 1);
	ret = eng_validate(q, req);
	if (ret <= 0) {
		AIOL_DEBUG_DATA("req op %u off %llu len %llu rejected: %d", req->op,
				(unsigned long long)req->off, (unsigned long long)req->len, ret);
		complete_later(req, ret);
		return 0;
	}
	if (!STAILQ_EMPTY(&q->fifo) || q->started >= q->depth) {
		STAILQ_INSERT_TAIL(&q->fifo, p, fifo);
		return 0;
	}
	q->submitting++;
	eng_start(req);
	q->submitting--;
	return 0;
}

/* ---- issuing primitives ---- */

static void eng_issue(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	struct aiol_queue *q = p->q;

	q->dev->store->ops->submit(q->sq, &p->io);
}

/* Set up the next primitive: op on [off, off + len) of the store. */
static void set_io(struct eng_priv *p, uint8_t op, uint64_t off, uint64_t len, void *buf)
{
	p->io.op = op;
	p->io.flags = 0;
	p->io.off = off;
	p->io.len = len;
	p->io.buf = buf;
	p->io.buf_index = 0;
	p->io.ext = NULL;
	p->io.ext_max = 0;
	p->io.ext_count = 0;
	p->eagain = 0;
}

static void rmw_step(struct aiol_req *req, int res);
static void eng_step_common(struct aiol_req *req, int res);

/*
 * A primitive of req completed with res (bytes or -errno), on the loop
 * thread.  Resubmits on -EAGAIN and for the rest of a short transfer; a
 * read or write that moves no bytes is -EIO.
 */
static void eng_io_done(struct aiol_req *req, int res)
{
	struct eng_priv *p = eng_priv(req);
	struct aiol_store_io *io = &p->io;

	if ((res == -EAGAIN || res == -EINTR) && p->eagain < ENG_EAGAIN_MAX) {
		p->eagain++;
		eng_issue(req);
		return;
	}
	if (res >= 0 && (io->op == AIOL_SIO_READ || io->op == AIOL_SIO_WRITE)) {
		if (res == 0 && io->len) {
			AIOL_DEBUG_DATA("%s of %llu bytes at %llu moved nothing",
					io->op == AIOL_SIO_READ ? "read" : "write",
					(unsigned long long)io->len, (unsigned long long)io->off);
			res = -EIO;
		} else if ((uint64_t)res < io->len) {
			io->off += (uint64_t)res;
			io->len -= (uint64_t)res;
			io->buf = (char *)io->buf + res;
			p->eagain = 0;
			eng_issue(req);
			return;
		} else {
			res = 0;
		}
	}
	if (p->stage == ST_RMW)
		rmw_step(req, res);
	else
		eng_step_common(req, res);
}

static void io_done(struct aiol_store_io *io, int res)
{
	struct eng_priv *p = aiol_container_of(io, struct eng_priv, io);
	struct aiol_queue *q = p->q;

	/* q outlives this call: eng_finish() completes the queue's last
	 * request later, never inside it. */
	q->completing++;
	eng_io_done(eng_req_of_priv(p), res);
	q->completing--;
}

/* ---- read-modify-write ---- */

static bool eng_rmw_needed(const struct aiol_queue *q, const struct aiol_req *req)
{
	const struct aiol_dev_info *info = &q->dev->info;

	if (!q->dev->ord)
		return false;
	switch (req->op) {
	case AIOL_OP_READ:
	case AIOL_OP_WRITE:
		return rmw_needed(req->off, req->len, req->buf, info->dio_align,
				  info->dio_mem_align);
	case AIOL_OP_WRITE_ZEROES:
		return rmw_needed(req->off, req->len, NULL, info->dio_align, 1);
	default:
		return false;
	}
}

static struct rmw_req rmw_req_of(const struct aiol_req *req, const struct aiol_queue *q)
{
	return (struct rmw_req){
	    .off = req->off,
	    .len = req->len,
	    .align = q->dev->info.dio_align,
	    .chunk = ENG_CHUNK,
	    .read = req->op == AIOL_OP_READ,
	};
}

/* Issue the step function's next primitive, or finish. */
static void rmw_continue(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	struct aiol_queue *q = p->q;
	struct rmw_req r = rmw_req_of(req, q);
	struct rmw_io *rio = &p->rio;
	uint64_t base = q->dev->info.offset;

	switch (rmw_next(&r, &p->rs, rio)) {
	case RMW_DONE:
		eng_finish(req, 0);
		return;
	case RMW_WRITE:
		assert(rio->boff + rio->len <= p->bounce.len);
		rmw_copy_in(rio, p->bounce.buf, req->op == AIOL_OP_WRITE ? req->buf : NULL);
		set_io(p, AIOL_SIO_WRITE, base + rio->off, rio->len,
		       (char *)p->bounce.buf + rio->boff);
		p->io.flags = req->flags & AIOL_F_FUA;
		break;
	case RMW_READ:
	default:
		assert(rio->boff + rio->len <= p->bounce.len);
		set_io(p, AIOL_SIO_READ, base + rio->off, rio->len,
		       (char *)p->bounce.buf + rio->boff);
		break;
	}
	eng_issue(req);
}

static void rmw_go(struct aiol_req *req);

static void bounce_retry_work(struct aiol_work *w)
{
	struct eng_priv *p = aiol_container_of(w, struct eng_priv, work);

	rmw_go(eng_req_of_priv(p));
}

/* Take the bounce (once per request), then go on. */
static void rmw_go(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);

	if (!p->bounce.buf) {
		struct rmw_req r = rmw_req_of(req, p->q);

		p->work.fn = bounce_retry_work;
		if (!bounce_get(&p->q->bounce, &p->bounce, rmw_bounce_len(&r), &p->work))
			return;
	}
	rmw_continue(req);
}

static void rmw_start(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);

	p->stage = ST_RMW;
	p->pos = 0;
	memset(&p->rs, 0, sizeof(p->rs));
	rmw_go(req);
}

static void rmw_step(struct aiol_req *req, int res)
{
	struct eng_priv *p = eng_priv(req);

	if (res < 0) {
		eng_finish(req, res);
		return;
	}
	if (p->rio.kind == RMW_READ && p->rio.copy_len)
		rmw_copy_out(&p->rio, p->bounce.buf, req->buf);
	rmw_continue(req);
}

/* ---- per-op state machines ---- */

static uint64_t store_off(const struct aiol_req *req, const struct eng_priv *p)
{
	return p->q->dev->info.offset + req->off + p->pos;
}

/* Issue the next chunk of a plain read/write, zero write or cache hint, or
 * report that the request is complete. */
static bool next_chunk(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	uint64_t rest = req->len - p->pos, n;

	if (!rest)
		return false;
	switch (p->stage) {
	case ST_RW:
		n = rest < ENG_IO_MAX ? rest : ENG_IO_MAX;
		set_io(p, req->op == AIOL_OP_READ ? AIOL_SIO_READ : AIOL_SIO_WRITE,
		       store_off(req, p), n, (char *)req->buf + p->pos);
		if (req->op == AIOL_OP_WRITE)
			p->io.flags = req->flags & AIOL_F_FUA;
		/* The kernel's registered buffer travels to the store as is
		 * (buf an offset into it: the chunk's offset is added). */
		if (req->flags & AIOL_F_FIXED_BUF) {
			p->io.flags |= AIOL_F_FIXED_BUF;
			p->io.buf_index = req->buf_index;
		}
		break;
	case ST_ZWRITE:
		n = rest < ENG_CHUNK ? rest : ENG_CHUNK;
		set_io(p, AIOL_SIO_WRITE, store_off(req, p), n, p->q->zbuf);
		p->io.flags = req->flags & AIOL_F_FUA;
		break;
	case ST_CACHE:
	default:
		n = rest < ENG_IO_MAX ? rest : ENG_IO_MAX;
		set_io(p, AIOL_SIO_CACHE, store_off(req, p), n, NULL);
		break;
	}
	eng_issue(req);
	return true;
}

/* Pick the write-zeroes strategy after `failed` (0 at the start); returns
 * 0 or -ENOTSUP / -EOPNOTSUPP when none is allowed. */
static int pick_zmode(struct aiol_req *req, int failed)
{
	struct eng_priv *p = eng_priv(req);
	const struct aiol_dev *dev = p->q->dev;
	uint32_t sc = aiol_store_caps(dev->store);
	bool keep = req->flags & AIOL_F_NO_UNMAP;
	uint64_t soff = dev->info.offset + req->off;

	if (sc & AIOL_STORE_DISCARD_NOZERO)
		sc &= ~AIOL_STORE_DISCARD; /* a discard would not read as zeroes */
	/* The store discards and zeroes only whole units of discard_align. */
	if ((soff | req->len) & (dev->store->discard_align - 1))
		sc &= ~(AIOL_STORE_DISCARD | AIOL_STORE_ZERO);

	if (!keep && failed < ZM_PUNCH && (sc & AIOL_STORE_DISCARD))
		p->zmode = ZM_PUNCH;
	else if (failed < ZM_ZERO && (sc & AIOL_STORE_ZERO))
		p->zmode = ZM_ZERO;
	else if (req->flags & AIOL_F_FAST_ONLY)
		return -ENOTSUP;
	else
		p->zmode = ZM_WRITE;
	return 0;
}

static void issue_falloc(struct aiol_req *req, uint8_t op, uint64_t off, uint64_t len)
{
	struct eng_priv *p = eng_priv(req);

	p->stage = ST_FALLOC;
	set_io(p, op, off, len, NULL);
	eng_issue(req);
}

/* Discard is a hint: only the whole units of discard_align inside the
 * range are discarded (a block device refuses partial blocks). */
static void discard_go(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	const struct aiol_dev *dev = p->q->dev;
	uint64_t da = dev->store->discard_align;
	uint64_t s = align_up(dev->info.offset + req->off, da);
	uint64_t e = align_down(dev->info.offset + req->off + req->len, da);

	if (s >= e) {
		eng_finish(req, 0);
		return;
	}
	issue_falloc(req, AIOL_SIO_DISCARD, s, e - s);
}

static void zeroes_go(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);

	switch (p->zmode) {
	case ZM_PUNCH:
		issue_falloc(req, AIOL_SIO_DISCARD, store_off(req, p), req->len);
		break;
	case ZM_ZERO:
		issue_falloc(req, AIOL_SIO_ZERO, store_off(req, p), req->len);
		break;
	default:
		if (eng_rmw_needed(p->q, req)) {
			rmw_start(req);
			return;
		}
		p->stage = ST_ZWRITE;
		p->pos = 0;
		if (!next_chunk(req))
			eng_finish(req, 0);
		break;
	}
}

static void ord_granted(struct ord_entry *e)
{
	struct eng_priv *p = aiol_container_of(e, struct eng_priv, ord);

	eng_after_lock(eng_req_of_priv(p));
}

static void eng_start(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	struct aiol_queue *q = p->q;
	bool rmw;
	int ret;

	q->started++;
	p->pos = 0;
	switch (req->op) {
	case AIOL_OP_READ:
		if (eng_rmw_needed(q, req)) {
			rmw_start(req);
			return;
		}
		p->stage = ST_RW;
		next_chunk(req);
		return;
	case AIOL_OP_WRITE:
	case AIOL_OP_DISCARD:
		break;
	case AIOL_OP_WRITE_ZEROES:
		ret = pick_zmode(req, 0);
		if (ret < 0) {
			eng_finish(req, ret);
			return;
		}
		break;
	case AIOL_OP_FLUSH:
		p->stage = ST_ONE;
		set_io(p, AIOL_SIO_FLUSH, 0, 0, NULL);
		eng_issue(req);
		return;
	case AIOL_OP_BLOCK_STATUS:
		p->stage = ST_ONE;
		set_io(p, AIOL_SIO_EXTENTS, store_off(req, p), req->len, NULL);
		p->io.ext = req->ext;
		p->io.ext_max = req->ext_max;
		eng_issue(req);
		return;
	case AIOL_OP_CACHE:
	default:
		/* A readahead hint is pointless without a cache to fill. */
		if (!(aiol_store_caps(q->dev->store) & AIOL_STORE_CACHE)) {
			eng_finish(req, 0);
			return;
		}
		p->stage = ST_CACHE;
		next_chunk(req);
		return;
	}
	/* Writes of any kind: ordered against read-modify-writes. */
	p->stage = ST_LOCK;
	if (!q->dev->ord) {
		eng_after_lock(req); /* no RMW on this store: nothing to order */
		return;
	}
	rmw =
	    (req->op == AIOL_OP_WRITE || req->op == AIOL_OP_WRITE_ZEROES) && eng_rmw_needed(q, req);
	p->ord.granted = ord_granted;
	if (ord_acquire(&q->ord, &p->ord, req->off, req->len, rmw))
		eng_after_lock(req);
}

/* A write-like request holds its place in the write ordering: go. */
static void eng_after_lock(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);

	switch (req->op) {
	case AIOL_OP_WRITE:
		if (eng_rmw_needed(p->q, req)) {
			rmw_start(req);
			return;
		}
		p->stage = ST_RW;
		next_chunk(req);
		return;
	case AIOL_OP_DISCARD:
		discard_go(req);
		return;
	default:
		zeroes_go(req);
		return;
	}
}

static void eng_step_common(struct aiol_req *req, int res)
{
	struct eng_priv *p = eng_priv(req);
	struct aiol_dev *dev = p->q->dev;
	int ret;

	if (res < 0 && p->stage == ST_FALLOC && (res == -EOPNOTSUPP || res == -ENOTTY)) {
		if (req->op == AIOL_OP_DISCARD) {
			eng_cap_clear(dev, AIOL_STORE_DISCARD);
			eng_finish(req, -EOPNOTSUPP);
			return;
		}
		eng_cap_clear(dev, p->zmode == ZM_PUNCH ? AIOL_STORE_DISCARD : AIOL_STORE_ZERO);
		ret = pick_zmode(req, p->zmode);
		if (ret < 0) {
			eng_finish(req, ret);
			return;
		}
		zeroes_go(req);
		return;
	}
	if (res < 0) {
		eng_finish(req, res);
		return;
	}
	switch (p->stage) {
	case ST_RW:
	case ST_ZWRITE:
	case ST_CACHE:
		p->pos = p->io.off + p->io.len - dev->info.offset - req->off;
		if (!next_chunk(req))
			eng_finish(req, 0);
		return;
	case ST_FALLOC:
		if (req->flags & AIOL_F_FUA) {
			p->stage = ST_SYNC_AFTER;
			set_io(p, AIOL_SIO_FLUSH, 0, 0, NULL);
			eng_issue(req);
			return;
		}
		eng_finish(req, 0);
		return;
	case ST_ONE:
		if (req->op == AIOL_OP_BLOCK_STATUS)
			req->ext_count = p->io.ext_count;
		eng_finish(req, 0);
		return;
	case ST_SYNC_AFTER:
	default:
		eng_finish(req, 0);
		return;
	}
}
