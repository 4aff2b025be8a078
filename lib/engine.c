// SPDX-License-Identifier: MIT
/*
 * The engine's common layer (see engine_internal.h for the whole flow):
 * queues, the one request validator, the per-op state machines that turn a
 * request into primitives on the backing fd (with the dev offset added),
 * the handling every backend shares (-EAGAIN resubmitted, short transfers
 * resubmitted for the rest, zero-byte reads are -EIO, errors passed on
 * unchanged), the FIFO behind the queue depth, deferred completion, and the
 * synchronous executor used by the sync backend and by pool threads.
 *
 * Block semantics follow the kernel loop driver: flush is fdatasync, FUA a
 * write with RWF_DSYNC, discard PUNCH_HOLE|KEEP_SIZE, write-zeroes
 * ZERO_RANGE|KEEP_SIZE with no-unmap and PUNCH_HOLE|KEEP_SIZE without;
 * when the backing answers EOPNOTSUPP the capability is cleared on the dev
 * and write-zeroes falls back (punch, zero range, then writing zeroes from a
 * zeroed buffer in ENG_CHUNK steps unless fast-only was asked).
 *
 * Thread model: everything here runs on the queue's loop thread except
 * eng_exec() and eng_cap_clear(), which pool threads call too (they read
 * only the immutable dev, the request they were handed, and update the
 * capability bits atomically).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "engine_internal.h"

/* Write-zeroes strategies (eng_priv.zmode). */
enum {
	ZM_PUNCH = 1,
	ZM_ZERO,
	ZM_WRITE,
};

static void eng_start(struct aiol_req *req);
static void eng_after_lock(struct aiol_req *req);

static uint32_t load_caps(const struct aiol_dev *dev)
{
	return __atomic_load_n(&dev->info.caps, __ATOMIC_RELAXED);
}

static uint32_t load_fl(const struct aiol_dev *dev)
{
	return __atomic_load_n(&dev->fl, __ATOMIC_RELAXED);
}

void eng_cap_clear(struct aiol_dev *dev, uint32_t fl)
{
	uint32_t old = __atomic_fetch_and(&dev->fl, ~fl, __ATOMIC_RELAXED);
	uint32_t now = old & ~fl, drop = 0;

	if (!(now & ENG_FL_PUNCH))
		drop |= AIOL_CAP_DISCARD;
	if (!(now & (ENG_FL_PUNCH | ENG_FL_ZERO)))
		drop |= AIOL_CAP_WRITE_ZEROES | AIOL_CAP_FAST_ZERO;
	__atomic_fetch_and(&dev->info.caps, ~drop, __ATOMIC_RELAXED);
	if (old & fl)
		aiol_warn("%s: the backing does not support fallocate %s: no longer used",
			  dev->path, fl & ENG_FL_PUNCH ? "PUNCH_HOLE" : "ZERO_RANGE");
}

/* ---- queues ---- */

int aiol_queue_create(struct aiol_dev *dev, struct aiol_loop *loop,
		      const struct aiol_queue_opts *opts, struct aiol_queue **out)
{
	struct aiol_queue *q;
	int ret;

	*out = NULL;
	if (!dev || !loop)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->dev = dev;
	q->loop = loop;
	q->file_slot = -1;
	q->stripe_retry.tv_nsec = ENG_STRIPE_RETRY_NS;
	q->depth = opts && opts->depth ? opts->depth : 128;
	switch (dev->info.engine) {
	case AIOL_ENGINE_URING:
		q->be = &eng_backend_uring;
		break;
	case AIOL_ENGINE_AIO:
		q->be = &eng_backend_aio;
		break;
	case AIOL_ENGINE_THREADS:
		q->be = &eng_backend_threads;
		break;
	case AIOL_ENGINE_SYNC:
	default:
		q->be = &eng_backend_sync;
		q->depth = 1;	/* one request at a time, in order */
		break;
	}
	if (!dev->info.read_only) {
		if (posix_memalign(&q->zbuf, 4096, ENG_CHUNK)) {
			ret = -ENOMEM;
			goto err_free;
		}
		memset(q->zbuf, 0, ENG_CHUNK);
	}
	if (dev->info.direct) {
		/* The bounce of last resort, so that unaligned I/O always
		 * progresses even when the arena is full (rmw.c). */
		if (posix_memalign(&q->reserve, 4096, ENG_CHUNK + 2 * dev->info.dio_align)) {
			ret = -ENOMEM;
			goto err_free;
		}
	}
	ret = q->be->init(q);
	if (ret < 0) {
		aiol_err("%s: cannot start the %s engine: %s", dev->path, q->be->name,
			 strerror(-ret));
		goto err_free;
	}
	*out = q;
	return 0;

err_free:
	free(q->reserve);
	free(q->zbuf);
	free(q);
	return ret;
}

void aiol_queue_destroy(struct aiol_queue *q)
{
	if (!q)
		return;
	q->be->fini(q);
	free(q->reserve);
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
	const struct aiol_dev_info *info = &dev->info;

	if (info->engine != AIOL_ENGINE_URING || !len_align)
		return false;
	return !info->direct || len_align % info->dio_align == 0;
}

/* ---- validation ---- */

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
	/* A registered buffer of the kernel's: never bounced, ring only. */
	if ((req->flags & AIOL_F_FIXED_BUF) &&
	    ((req->op != AIOL_OP_READ && req->op != AIOL_OP_WRITE) ||
	     q->be != &eng_backend_uring || eng_rmw_needed(q, req)))
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

static void done_work(struct aiol_work *w)
{
	struct eng_priv *p = aiol_container_of(w, struct eng_priv, work);
	struct aiol_req *req = eng_req_of_priv(p);
	struct aiol_queue *q = p->q;
	int res = p->res;

	/* The last request's done() says the queue may be destroyed: hold it
	 * while the backend still has something of its own on the ring. */
	if (q->outstanding == 1 && q->be->busy && q->be->busy(q)) {
		assert(!q->held);
		q->held = req;
		return;
	}
	q->outstanding--;
	AIOL_DEBUG_DATA("req %p op %u off %llu len %llu: %d", (void *)req, req->op,
			(unsigned long long)req->off, (unsigned long long)req->len, res);
	req->done(req, res);
}

void eng_release_held(struct aiol_queue *q)
{
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
	while (q->fifo_head && q->started < q->depth) {
		struct aiol_req *req = q->fifo_head;

		q->fifo_head = eng_priv(req)->next;
		if (!q->fifo_head)
			q->fifo_tail = NULL;
		eng_priv(req)->next = NULL;
		eng_start(req);
	}
	q->pumping = false;
}

void eng_finish(struct aiol_req *req, int res)
{
	struct eng_priv *p = eng_priv(req);
	struct aiol_queue *q = p->q;

	eng_rmw_release(req);
	if (p->lk_held)
		eng_unlock(q, req);
	p->stage = ST_NONE;
	q->started--;
	complete_later(req, res);
	eng_pump(q);
}

int aiol_submit(struct aiol_queue *q, struct aiol_req *req)
{
	struct eng_priv *p;
	int ret;

	if (!q || !req || !req->done)
		return -EINVAL;
	p = eng_priv(req);
	memset(&req->_priv, 0, sizeof(req->_priv));
	p->q = q;
	q->outstanding++;
	ret = eng_validate(q, req);
	if (ret <= 0) {
		AIOL_DEBUG_DATA("req op %u off %llu len %llu rejected: %d", req->op,
				(unsigned long long)req->off, (unsigned long long)req->len, ret);
		complete_later(req, ret);
		return 0;
	}
	if (q->fifo_head || q->started >= q->depth) {
		if (q->fifo_tail)
			eng_priv(q->fifo_tail)->next = req;
		else
			q->fifo_head = req;
		q->fifo_tail = req;
		return 0;
	}
	eng_start(req);
	return 0;
}

/* ---- issuing primitives ---- */

void eng_issue(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	struct aiol_queue *q = p->q;

	if (!q->be->inline_exec) {
		q->be->issue(q, req);
		return;
	}
	/* Inline backend: run primitives one after the other from a loop
	 * rather than recursing through eng_io_done(). */
	p->next = NULL;
	if (q->tramp_tail)
		eng_priv(q->tramp_tail)->next = req;
	else
		q->tramp_head = req;
	q->tramp_tail = req;
	if (q->in_trampoline)
		return;
	q->in_trampoline = true;
	while (q->tramp_head) {
		struct aiol_req *r = q->tramp_head;

		q->tramp_head = eng_priv(r)->next;
		if (!q->tramp_head)
			q->tramp_tail = NULL;
		eng_priv(r)->next = NULL;
		eng_io_done(r, eng_exec(q->dev, r));
	}
	q->in_trampoline = false;
}

static void set_io(struct eng_priv *p, uint8_t kind, uint64_t off, uint64_t len, void *buf)
{
	p->io.kind = kind;
	p->io.fua = false;
	p->io.mode = 0;
	p->io.off = off;
	p->io.len = len;
	p->io.buf = buf;
	p->eagain = 0;
}

/*
 * A primitive of req completed with res (bytes or -errno).  Called by the
 * backends on the loop thread.  Resubmits on -EAGAIN and for the rest of a
 * short transfer; a read or write that moves no bytes is -EIO.
 */
void eng_io_done(struct aiol_req *req, int res)
{
	struct eng_priv *p = eng_priv(req);
	struct eng_io *io = &p->io;

	if ((res == -EAGAIN || res == -EINTR) && p->eagain < ENG_EAGAIN_MAX) {
		p->eagain++;
		eng_issue(req);
		return;
	}
	if (res >= 0 && (io->kind == IO_READ || io->kind == IO_WRITE)) {
		if (res == 0 && io->len) {
			AIOL_DEBUG_DATA("%s of %llu bytes at %llu moved nothing",
					io->kind == IO_READ ? "read" : "write",
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
		eng_rmw_step(req, res);
	else
		eng_step_common(req, res);
}

static void io_done_work(struct aiol_work *w)
{
	struct eng_priv *p = aiol_container_of(w, struct eng_priv, work);

	eng_io_done(eng_req_of_priv(p), p->res);
}

void eng_io_done_later(struct aiol_req *req, int res)
{
	struct eng_priv *p = eng_priv(req);

	p->res = res;
	p->work.fn = io_done_work;
	aiol_loop_defer(p->q->loop, &p->work);
}

/* ---- per-op state machines ---- */

static uint64_t backing_off(const struct aiol_req *req, const struct eng_priv *p)
{
	return p->q->dev->info.offset + req->off + p->pos;
}

/* Issue the next chunk of a plain read/write, zero write or fadvise, or
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
		set_io(p, req->op == AIOL_OP_READ ? IO_READ : IO_WRITE, backing_off(req, p), n,
		       (char *)req->buf + p->pos);
		p->io.fua = req->op == AIOL_OP_WRITE && (req->flags & AIOL_F_FUA);
		break;
	case ST_ZWRITE:
		n = rest < ENG_CHUNK ? rest : ENG_CHUNK;
		set_io(p, IO_WRITE, backing_off(req, p), n, p->q->zbuf);
		p->io.fua = req->flags & AIOL_F_FUA;
		break;
	case ST_CACHE:
	default:
		n = rest < ENG_IO_MAX ? rest : ENG_IO_MAX;
		set_io(p, IO_FADVISE, backing_off(req, p), n, NULL);
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
	uint32_t fl = load_fl(dev);
	bool keep = req->flags & AIOL_F_NO_UNMAP;
	uint64_t boff = dev->info.offset + req->off;

	/* fallocate on a block device wants whole logical blocks. */
	if (dev->info.is_blockdev && ((boff | req->len) & (dev->bdev_lbs - 1)))
		fl = 0;

	if (!keep && failed < ZM_PUNCH && (fl & ENG_FL_PUNCH))
		p->zmode = ZM_PUNCH;
	else if (failed < ZM_ZERO && (fl & ENG_FL_ZERO))
		p->zmode = ZM_ZERO;
	else if (req->flags & AIOL_F_FAST_ONLY)
		return -ENOTSUP;
	else
		p->zmode = ZM_WRITE;
	return 0;
}

static void issue_falloc(struct aiol_req *req, int mode)
{
	struct eng_priv *p = eng_priv(req);

	p->stage = ST_FALLOC;
	set_io(p, IO_FALLOC, backing_off(req, p), req->len, NULL);
	p->io.mode = mode;
	eng_issue(req);
}

/* Discard is a hint: on a block device only the whole logical blocks
 * inside the range are discarded (fallocate refuses partial ones). */
static void discard_go(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	const struct aiol_dev *dev = p->q->dev;
	uint64_t s, e;

	if (!dev->info.is_blockdev) {
		issue_falloc(req, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
		return;
	}
	s = eng_align_up(dev->info.offset + req->off, dev->bdev_lbs);
	e = eng_align_down(dev->info.offset + req->off + req->len, dev->bdev_lbs);
	if (s >= e) {
		eng_finish(req, 0);
		return;
	}
	p->stage = ST_FALLOC;
	set_io(p, IO_FALLOC, s, e - s, NULL);
	p->io.mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	eng_issue(req);
}

static void zeroes_go(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);

	switch (p->zmode) {
	case ZM_PUNCH:
		issue_falloc(req, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
		break;
	case ZM_ZERO:
		issue_falloc(req, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE);
		break;
	default:
		if (eng_rmw_needed(p->q, req)) {
			eng_rmw_start(req);
			return;
		}
		p->stage = ST_ZWRITE;
		p->pos = 0;
		if (!next_chunk(req))
			eng_finish(req, 0);
		break;
	}
}

static void eng_start(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	struct aiol_queue *q = p->q;
	int ret;

	q->started++;
	p->pos = 0;
	switch (req->op) {
	case AIOL_OP_READ:
		if (eng_rmw_needed(q, req)) {
			eng_rmw_start(req);
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
		set_io(p, IO_FSYNC, 0, 0, NULL);
		eng_issue(req);
		return;
	case AIOL_OP_BLOCK_STATUS:
		p->stage = ST_ONE;
		set_io(p, IO_BLKSTAT, backing_off(req, p), req->len, NULL);
		eng_issue(req);
		return;
	case AIOL_OP_CACHE:
	default:
		/* A readahead hint is pointless when the page cache is bypassed. */
		if (q->dev->info.direct) {
			eng_finish(req, 0);
			return;
		}
		p->stage = ST_CACHE;
		next_chunk(req);
		return;
	}
	/* Writes of any kind: ordered against read-modify-writes (rmw.c). */
	p->stage = ST_LOCK;
	if (eng_lock(q, req, (req->op == AIOL_OP_WRITE || req->op == AIOL_OP_WRITE_ZEROES) &&
			     eng_rmw_needed(q, req)))
		eng_after_lock(req);
}

/* A write-like request holds its range lock: go. */
static void eng_after_lock(struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);

	switch (req->op) {
	case AIOL_OP_WRITE:
		if (eng_rmw_needed(p->q, req)) {
			eng_rmw_start(req);
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

void eng_resume(struct aiol_req *req)
{
	eng_after_lock(req);
}

void eng_step_common(struct aiol_req *req, int res)
{
	struct eng_priv *p = eng_priv(req);
	struct aiol_dev *dev = p->q->dev;
	int ret;

	if (res < 0 && p->stage == ST_FALLOC && (res == -EOPNOTSUPP || res == -ENOTTY)) {
		if (req->op == AIOL_OP_DISCARD) {
			eng_cap_clear(dev, ENG_FL_PUNCH);
			eng_finish(req, -EOPNOTSUPP);
			return;
		}
		eng_cap_clear(dev, p->zmode == ZM_PUNCH ? ENG_FL_PUNCH : ENG_FL_ZERO);
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
			set_io(p, IO_FSYNC, 0, 0, NULL);
			eng_issue(req);
			return;
		}
		eng_finish(req, 0);
		return;
	case ST_SYNC_AFTER:
	case ST_ONE:
	default:
		eng_finish(req, 0);
		return;
	}
}

/* ---- the synchronous executor ---- */

/* Block status of [io.off, io.off + io.len) by SEEK_DATA/SEEK_HOLE. */
static int eng_block_status(const struct aiol_dev *dev, struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	uint64_t pos = p->io.off, end = p->io.off + p->io.len;
	uint32_t n = 0;

	if (dev->info.is_blockdev) {
		req->ext[0].len = p->io.len;
		req->ext[0].flags = 0;
		req->ext_count = 1;
		return 0;
	}
	while (pos < end && n < req->ext_max) {
		off_t data, hole;
		uint64_t stop;
		uint32_t flags;

		data = lseek(dev->fd, (off_t)pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO) {
			data = (off_t)end;	/* only a hole from here on */
		} else if (data < 0) {
			/* No SEEK_DATA: everything is data. */
			if (errno != EINVAL && errno != EOPNOTSUPP)
				return -errno;
			data = (off_t)pos;
		}
		if ((uint64_t)data > pos) {
			stop = (uint64_t)data < end ? (uint64_t)data : end;
			flags = AIOL_EXT_HOLE | AIOL_EXT_ZERO;
		} else {
			hole = lseek(dev->fd, (off_t)pos, SEEK_HOLE);
			if (hole < 0 && errno != ENXIO && errno != EINVAL && errno != EOPNOTSUPP)
				return -errno;
			if (hole < 0 || (uint64_t)hole <= pos)
				hole = (off_t)end;
			stop = (uint64_t)hole < end ? (uint64_t)hole : end;
			flags = 0;
		}
		if (n && req->ext[n - 1].flags == flags) {
			req->ext[n - 1].len += stop - pos;
		} else {
			req->ext[n].len = stop - pos;
			req->ext[n].flags = flags;
			n++;
		}
		pos = stop;
	}
	req->ext_count = n;
	return 0;
}

int eng_exec(const struct aiol_dev *dev, struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	struct eng_io *io = &p->io;
	struct iovec iov = { .iov_base = io->buf, .iov_len = io->len };
	ssize_t r;
	int ret;

	switch (io->kind) {
	case IO_READ:
		r = preadv2(dev->fd, &iov, 1, (off_t)io->off, 0);
		return r < 0 ? -errno : (int)r;
	case IO_WRITE:
		r = pwritev2(dev->fd, &iov, 1, (off_t)io->off, io->fua ? RWF_DSYNC : 0);
		return r < 0 ? -errno : (int)r;
	case IO_FSYNC:
		return fdatasync(dev->fd) < 0 ? -errno : 0;
	case IO_FALLOC:
		return fallocate(dev->fd, io->mode, (off_t)io->off, (off_t)io->len) < 0 ? -errno : 0;
	case IO_FADVISE:
		ret = posix_fadvise(dev->fd, (off_t)io->off, (off_t)io->len, POSIX_FADV_WILLNEED);
		return -ret;
	case IO_BLKSTAT:
		return eng_block_status(dev, req);
	default:
		return -EINVAL;
	}
}
