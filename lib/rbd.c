// SPDX-License-Identifier: MIT
/*
 * The RBD store (aioloop/store.h): an image of a Ceph cluster, through
 * librbd's asynchronous API.  Reads, writes, flushes, discards and
 * write-zeroes are rbd_aio_* calls; FUA is the write, then a flush issued
 * when the write has completed; allocation comes from rbd_diff_iterate2
 * (objects that do not exist are holes).
 *
 * Completions.  librbd finishes requests on threads of its own.  The image
 * is set to notify an eventfd (rbd_set_image_notification) instead of
 * calling back: each finished completion is queued inside librbd and the
 * eventfd is written.  Every store queue that has requests with librbd
 * keeps one IORING_OP_READ of that eventfd on its loop's ring; the read
 * that gets the count collects every finished completion with
 * rbd_poll_io_events (read first, then poll: a completion queued after the
 * poll writes the eventfd again, so nothing is missed).  A completion
 * belongs to the queue whose slot is in io->tag: one of its own is
 * completed at once, another queue's is pushed on that queue's lock-free
 * stack, whose work item the pusher that found it empty posts to the
 * queue's loop (aiol_loop_post).  One image handle serves every queue
 * (several handles of one image would pass its exclusive lock back and
 * forth on every write).  When a queue has nothing left with librbd it
 * cancels its read (IORING_OP_ASYNC_CANCEL on its own ring) and is busy
 * until the read's completion has come back.
 *
 * rbd_diff_iterate2 blocks: block status runs on one helper thread per
 * queue, started on the first request for it, which posts its results
 * through aiol_store_complete_post.  The engine bounds how many are queued
 * (the queue depth).
 *
 * Resize: the export follows the image's size at open, and refresh_size
 * (aiol_dev_refresh_size: `aioloop resize`) reads it again.  With an
 * on_resize callback in the open options the store also watches the image
 * (rbd_update_watch): librbd calls rbd_watch_cb after any change to the
 * image's header, on its update-watcher thread (apart from the threads
 * that complete I/O, which it therefore never holds up), which reads the
 * size (a header refresh may block it, which is why this never runs on a
 * loop thread; the rbd tool's ggate watcher does the same) and calls
 * on_resize only when the size differs from the one last read.  The fast path never looks at
 * it: requests are validated against the engine's size, an atomic that
 * refresh_size stores.  rbd_update_unwatch, first thing at close, waits
 * for a callback in progress.
 *
 * Opening (rados_create, reading the configuration, rados_connect,
 * rbd_open) blocks and is control path.  Connection timeouts are set short
 * (client_mount_timeout, rados_mon_op_timeout) so that an absent cluster
 * fails within seconds, and rados_osd_op_timeout makes a request to a dead
 * OSD fail with -ETIMEDOUT rather than wait forever; the configuration
 * file and the name's options override them.
 *
 * Thread model: the store (cluster, image, eventfd, queue table) is shared;
 * the queue table is changed under st_mu by queue_create/destroy only, and
 * read without it for a completion, whose queue cannot go away while the
 * completion is outstanding.  A queue's counters and its read belong to
 * its loop thread; its helper's FIFO is under the helper's mutex.  Lock
 * order: st_mu, helper mu (never both).
 */
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "aioloop/store.h"
#include "rbdname.h"

#define RBD_MAX_QUEUES 1024
#define RBD_POLL_BATCH 64
/* io->tag: the queue's slot, and whether a FUA write waits for its flush. */
#define TAG_SLOT_MASK 0xffffu
#define TAG_FUA_FLUSH (1u << 31)

/* Defaults that the configuration file or the name may override. */
static const char *const rbd_defaults[][2] = {
    {"client_mount_timeout", "5"},
    {"rados_mon_op_timeout", "10"},
    {"rados_osd_op_timeout", "30"},
    /* A discard that covers part of an object zeroes that part. */
    {"rbd_skip_partial_discard", "false"},
    {"log_to_stderr", "false"},
    {"err_to_stderr", "false"},
};

struct rbd_queue;

struct rbd_store {
	struct aiol_store base;
	rados_t cluster;
	rados_ioctx_t ioctx;
	rbd_image_t image;
	int efd;
	char *path;	    /* rbd:POOL/IMAGE[@SNAP], for messages */
	uint64_t sizelimit; /* the window's limit (0: to the end); refresh_size */
	/* the image watch (rbd_update_watch), with on_resize */
	bool watching;
	uint64_t watch_handle;
	void (*on_resize)(void *arg);
	void *resize_arg;
	pthread_mutex_t st_mu;
	struct rbd_queue *queues[RBD_MAX_QUEUES]; /* slot -> queue; under st_mu */
};

struct rbd_helper {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	STAILQ_HEAD(, aiol_store_io) todo; /* under mu */
	bool stop;			   /* under mu */
};

struct rbd_queue {
	struct aiol_store_queue base;
	struct rbd_store *rs;
	unsigned int slot;
	unsigned int pending; /* ios with librbd, not yet back on this loop */
	bool armed;	      /* the eventfd read is on the ring */
	bool cancelling;      /* and its cancel too */
	uint64_t efd_val;
	struct aiol_event efd_ev;
	/* ios of this queue collected by other loops (lock-free stack
	 * through io->link), and the work that takes them in */
	_Atomic(struct aiol_store_io *) remote;
	struct aiol_work remote_work;
	struct rbd_helper *helper; /* block status, started by need */
	time_t err_last;	   /* rbd_io_error(): when it last spoke */
	unsigned int err_quiet;	   /* and how many it did not report since */
};

static struct rbd_store *rbd_store_of(struct aiol_store *st)
{
	return aiol_container_of(st, struct rbd_store, base);
}

static struct rbd_queue *rbd_queue_of(struct aiol_store_queue *sq)
{
	return aiol_container_of(sq, struct rbd_queue, base);
}

/* ---- completions ---- */

static void rbd_efd_done(struct aiol_event *ev, int res, unsigned int cqe_flags);

/* Keep the eventfd read armed exactly while ios are with librbd (loop
 * thread). */
static void rbd_settle(struct rbd_queue *q)
{
	struct io_uring_sqe *sqe;

	if (q->pending && !q->armed) {
		sqe = aiol_loop_sqe(q->base.loop, &q->efd_ev);
		io_uring_prep_read(sqe, q->rs->efd, &q->efd_val, sizeof(q->efd_val), 0);
		q->armed = true;
	} else if (!q->pending && q->armed && !q->cancelling) {
		sqe = aiol_loop_sqe(q->base.loop, NULL);
		io_uring_prep_cancel(sqe, &q->efd_ev, 0);
		q->cancelling = true;
	}
}

static int rbd_issue(struct rbd_queue *q, struct aiol_store_io *io);

static const char *const op_names[] = {
    [AIOL_SIO_READ] = "read",	    [AIOL_SIO_WRITE] = "write", [AIOL_SIO_FLUSH] = "flush",
    [AIOL_SIO_DISCARD] = "discard", [AIOL_SIO_ZERO] = "zero",	[AIOL_SIO_EXTENTS] = "extents",
    [AIOL_SIO_CACHE] = "cache",
};

/* Say that a request failed (a dead OSD times out every request in flight:
 * at most one line a second per queue, with the count of the others). */
static void rbd_io_error(struct rbd_queue *q, const struct aiol_store_io *io, int err)
{
	struct timespec now;
	char more[48] = "";

	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	if (q->err_last && now.tv_sec == q->err_last) {
		q->err_quiet++;
		return;
	}
	if (q->err_quiet)
		snprintf(more, sizeof(more), " (and %u more failed requests)", q->err_quiet);
	aiol_err("%s: %s of %" PRIu64 " bytes at %" PRIu64 ": %s%s%s", q->rs->path,
		 op_names[io->op], io->len, io->off, strerror(-err),
		 err == -ETIMEDOUT ? " (no answer from the cluster in rados_osd_op_timeout)" : "",
		 more);
	q->err_last = now.tv_sec;
	q->err_quiet = 0;
}

/* An io of q came back from librbd with r (q's loop thread). */
static void rbd_finished(struct rbd_queue *q, struct aiol_store_io *io, ssize_t r)
{
	int res;

	if (io->op == AIOL_SIO_WRITE && (io->flags & AIOL_F_FUA) && r >= 0 &&
	    !(io->tag & TAG_FUA_FLUSH)) {
		/* FUA: the write is done, now make it durable. */
		io->tag |= TAG_FUA_FLUSH;
		res = rbd_issue(q, io);
		if (res == 0)
			return;
		r = res;
	}
	q->pending--;
	if (r < 0) {
		if (r != -EAGAIN)
			rbd_io_error(q, io, (int)r);
		res = (int)r;
	} else if (io->op == AIOL_SIO_READ) {
		/* librbd reads in full (zeroes past the image's end). */
		res = r > (ssize_t)io->len ? (int)io->len : (int)r;
	} else if (io->op == AIOL_SIO_WRITE) {
		res = (int)io->len; /* librbd writes all or nothing */
	} else {
		res = 0;
	}
	aiol_store_complete(io, res);
}

/* Completions that other queues' loops collected for q, on q's loop. */
static void rbd_remote_work(struct aiol_work *w)
{
	struct rbd_queue *q = aiol_container_of(w, struct rbd_queue, remote_work);
	struct aiol_store_io *io, *rev = NULL;

	io = atomic_exchange_explicit(&q->remote, NULL, memory_order_acquire);
	while (io) { /* reverse into completion order */
		struct aiol_store_io *n = STAILQ_NEXT(io, link);

		STAILQ_NEXT(io, link) = rev;
		rev = io;
		io = n;
	}
	while (rev) {
		struct aiol_store_io *n = STAILQ_NEXT(rev, link);

		rbd_finished(q, rev, rev->res);
		rev = n;
	}
	rbd_settle(q);
}

/* Hand io, collected by another loop, to q's (any thread).  The queue's
 * work is posted by whoever finds its stack empty, so it is in the loop's
 * inbox at most once. */
static void rbd_remote_push(struct rbd_queue *q, struct aiol_store_io *io)
{
	struct aiol_store_io *head = atomic_load_explicit(&q->remote, memory_order_relaxed);

	do {
		STAILQ_NEXT(io, link) = head;
	} while (!atomic_compare_exchange_weak_explicit(&q->remote, &head, io, memory_order_release,
							memory_order_relaxed));
	if (!head)
		aiol_loop_post(q->base.loop, &q->remote_work);
}

/* Collect every finished completion of the image (any queue's loop). */
static void rbd_collect(struct rbd_queue *self)
{
	struct rbd_store *rs = self->rs;
	rbd_completion_t comps[RBD_POLL_BATCH];
	int n;

	do {
		n = rbd_poll_io_events(rs->image, comps, RBD_POLL_BATCH);
		if (n < 0) {
			aiol_err("%s: rbd_poll_io_events: %s", rs->path, strerror(-n));
			return;
		}
		for (int i = 0; i < n; i++) {
			struct aiol_store_io *io = rbd_aio_get_arg(comps[i]);
			ssize_t r = rbd_aio_get_return_value(comps[i]);
			struct rbd_queue *q;

			rbd_aio_release(comps[i]);
			q = rs->queues[io->tag & TAG_SLOT_MASK];
			if (q == self) {
				rbd_finished(q, io, r);
				continue;
			}
			/* Not ours: to its loop. */
			io->res = r < INT32_MIN ? -EIO : (int)r;
			rbd_remote_push(q, io);
		}
	} while (n == RBD_POLL_BATCH);
}

static void rbd_efd_done(struct aiol_event *ev, int res, unsigned int cqe_flags)
{
	struct rbd_queue *q = aiol_container_of(ev, struct rbd_queue, efd_ev);

	(void)cqe_flags;
	q->armed = false;
	q->cancelling = false;
	if (res < 0 && res != -ECANCELED && res != -EAGAIN && res != -EINTR)
		aiol_err("%s: reading the image's eventfd: %s", q->rs->path, strerror(-res));
	if (res != -ECANCELED)
		rbd_collect(q);
	rbd_settle(q);
	if (!q->armed)
		aiol_store_queue_idle(&q->base);
}

/* ---- block status: a helper thread ---- */

struct ext_ctx {
	struct aiol_store_io *io;
	uint64_t pos, end;
	bool full;
};

/* Append [pos, pos + len) with flags, merging; false when ext[] is full. */
static bool ext_add(struct ext_ctx *c, uint64_t len, uint32_t flags)
{
	struct aiol_store_io *io = c->io;

	if (!len)
		return true;
	if (io->ext_count && io->ext[io->ext_count - 1].flags == flags) {
		io->ext[io->ext_count - 1].len += len;
	} else if (io->ext_count < io->ext_max) {
		io->ext[io->ext_count].len = len;
		io->ext[io->ext_count].flags = flags;
		io->ext_count++;
	} else {
		c->full = true;
		return false;
	}
	c->pos += len;
	return true;
}

/* rbd_diff_iterate2's callback: [off, off + len) exists or not. */
static int ext_cb(uint64_t off, size_t len, int exists, void *arg)
{
	struct ext_ctx *c = arg;
	uint64_t end = off + len;

	if (end > c->end)
		end = c->end;
	if (end <= c->pos)
		return 0;
	if (off > c->pos && !ext_add(c, off - c->pos, AIOL_EXT_HOLE | AIOL_EXT_ZERO))
		return -EMSGSIZE;
	if (!ext_add(c, end - c->pos, exists ? 0 : AIOL_EXT_HOLE | AIOL_EXT_ZERO))
		return -EMSGSIZE;
	return 0;
}

static int rbd_extents(struct rbd_store *rs, struct aiol_store_io *io)
{
	struct ext_ctx c = {.io = io, .pos = io->off, .end = io->off + io->len};
	int ret;

	io->ext_count = 0;
	ret = rbd_diff_iterate2(rs->image, NULL, io->off, io->len, 1, 1, ext_cb, &c);
	if (ret < 0 && !c.full) {
		aiol_err("%s: allocation of %" PRIu64 "+%" PRIu64 ": %s", rs->path, io->off,
			 io->len, strerror(-ret));
		return ret;
	}
	if (!c.full)
		ext_add(&c, c.end - c.pos, AIOL_EXT_HOLE | AIOL_EXT_ZERO);
	return 0;
}

static void *helper_main(void *arg)
{
	struct rbd_queue *q = arg;
	struct rbd_helper *h = q->helper;

	for (;;) {
		struct aiol_store_io *io;

		pthread_mutex_lock(&h->mu);
		while (STAILQ_EMPTY(&h->todo) && !h->stop)
			pthread_cond_wait(&h->cv, &h->mu);
		io = STAILQ_FIRST(&h->todo);
		if (!io) {
			pthread_mutex_unlock(&h->mu);
			return NULL;
		}
		STAILQ_REMOVE_HEAD(&h->todo, link);
		pthread_mutex_unlock(&h->mu);
		/* After this the io belongs to the loop again. */
		aiol_store_complete_post(&q->base, io, rbd_extents(q->rs, io));
	}
}

static int helper_start(struct rbd_queue *q)
{
	struct rbd_helper *h;
	sigset_t all, old;
	int ret;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	STAILQ_INIT(&h->todo);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	q->helper = h;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&h->th, NULL, helper_main, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret < 0) {
		aiol_err("%s: starting the block status thread: %s", q->rs->path, strerror(-ret));
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		free(h);
		q->helper = NULL;
	}
	return ret;
}

static void helper_stop(struct rbd_helper *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = true;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->th, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

/* ---- submission ---- */

/* Hand io to librbd; 0, or -errno when it was refused at once. */
static int rbd_issue(struct rbd_queue *q, struct aiol_store_io *io)
{
	rbd_image_t img = q->rs->image;
	rbd_completion_t c;
	int ret;

	ret = rbd_aio_create_completion(io, NULL, &c);
	if (ret < 0)
		return ret;
	switch (io->op) {
	case AIOL_SIO_READ:
		ret = rbd_aio_read(img, io->off, io->len, io->buf, c);
		break;
	case AIOL_SIO_WRITE:
		if (io->tag & TAG_FUA_FLUSH)
			ret = rbd_aio_flush(img, c);
		else
			ret = rbd_aio_write(img, io->off, io->len, io->buf, c);
		break;
	case AIOL_SIO_FLUSH:
		ret = rbd_aio_flush(img, c);
		break;
	case AIOL_SIO_DISCARD:
		ret = rbd_aio_discard(img, io->off, io->len, c);
		break;
	case AIOL_SIO_ZERO:
		ret = rbd_aio_write_zeroes(img, io->off, io->len, c, 0, 0);
		break;
	default:
		ret = -EINVAL;
		break;
	}
	if (ret < 0)
		rbd_aio_release(c);
	return ret;
}

static void rbd_submit(struct aiol_store_queue *sq, struct aiol_store_io *io)
{
	struct rbd_queue *q = rbd_queue_of(sq);
	int ret;

	io->tag = q->slot;
	if (io->op == AIOL_SIO_CACHE) {
		aiol_store_complete_later(sq, io, 0);
		return;
	}
	if (io->op == AIOL_SIO_EXTENTS) {
		if (!q->helper && (ret = helper_start(q)) < 0) {
			aiol_store_complete_later(sq, io, ret);
			return;
		}
		pthread_mutex_lock(&q->helper->mu);
		STAILQ_INSERT_TAIL(&q->helper->todo, io, link);
		pthread_cond_signal(&q->helper->cv);
		pthread_mutex_unlock(&q->helper->mu);
		return;
	}
	ret = rbd_issue(q, io);
	if (ret < 0) {
		aiol_store_complete_later(sq, io, ret);
		return;
	}
	q->pending++;
	rbd_settle(q);
}

static bool rbd_busy(const struct aiol_store_queue *sq)
{
	const struct rbd_queue *q = aiol_container_of(sq, struct rbd_queue, base);

	return q->armed;
}

static int rbd_queue_create(struct aiol_store *st, struct aiol_loop *loop, unsigned int depth,
			    struct aiol_store_queue **out)
{
	struct rbd_store *rs = rbd_store_of(st);
	struct rbd_queue *q;
	unsigned int slot;

	*out = NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	aiol_store_queue_init(&q->base, st, loop, depth);
	q->rs = rs;
	q->efd_ev.fn = rbd_efd_done;
	q->remote_work.fn = rbd_remote_work;
	pthread_mutex_lock(&rs->st_mu);
	for (slot = 0; slot < RBD_MAX_QUEUES && rs->queues[slot]; slot++)
		;
	if (slot < RBD_MAX_QUEUES)
		rs->queues[slot] = q;
	pthread_mutex_unlock(&rs->st_mu);
	if (slot == RBD_MAX_QUEUES) {
		aiol_err("%s: more than %d queues on one image", rs->path, RBD_MAX_QUEUES);
		free(q);
		return -EMFILE;
	}
	q->slot = slot;
	*out = &q->base;
	return 0;
}

static void rbd_queue_destroy(struct aiol_store_queue *sq)
{
	struct rbd_queue *q = rbd_queue_of(sq);
	struct rbd_store *rs = q->rs;

	helper_stop(q->helper);
	if (q->armed || q->pending) {
		/* The ring or librbd still points at q: leak it. */
		aiol_err("%s: queue destroyed with I/O in flight", rs->path);
		return;
	}
	pthread_mutex_lock(&rs->st_mu);
	rs->queues[q->slot] = NULL;
	pthread_mutex_unlock(&rs->st_mu);
	free(q);
}

static int rbd_sync(struct aiol_store *st)
{
	struct rbd_store *rs = rbd_store_of(st);
	int ret = rbd_flush(rs->image);

	if (ret < 0)
		aiol_err("%s: flush: %s", rs->path, strerror(-ret));
	return ret;
}

static void rbd_store_free(struct rbd_store *rs)
{
	if (rs->watching)
		rbd_update_unwatch(rs->image, rs->watch_handle);
	if (rs->image)
		rbd_close(rs->image);
	if (rs->ioctx)
		rados_ioctx_destroy(rs->ioctx);
	if (rs->cluster)
		rados_shutdown(rs->cluster);
	if (rs->efd >= 0)
		close(rs->efd);
	pthread_mutex_destroy(&rs->st_mu);
	free(rs->path);
	free(rs);
}

static void rbd_store_close(struct aiol_store *st)
{
	rbd_store_free(rbd_store_of(st));
}

/* The visible size of an image of backing bytes: what it leaves after the
 * offset, at most limit (0: no limit); 0 when nothing is left. */
static uint64_t rbd_visible(uint64_t backing, uint64_t offset, uint64_t limit)
{
	uint64_t size = backing > offset ? backing - offset : 0;

	return limit && limit < size ? limit : size;
}

/* Online resize: the image's size now gives the window, as at open
 * (control path; rbd_get_size may refresh the image's header, blocking). */
static int rbd_refresh_size(struct aiol_store *st, uint64_t sizelimit, uint64_t *size_out)
{
	struct rbd_store *rs = rbd_store_of(st);
	struct aiol_dev_info *info = &st->info;
	uint64_t backing, size, limit = sizelimit ? sizelimit : rs->sizelimit;
	int ret;

	ret = rbd_get_size(rs->image, &backing);
	if (ret < 0) {
		aiol_err("%s: size of the image: %s", rs->path, strerror(-ret));
		return ret;
	}
	size = rbd_visible(backing, info->offset, limit);
	if (size == 0) {
		aiol_err("%s: an image of %" PRIu64 " bytes leaves nothing visible after offset "
			 "%" PRIu64,
			 rs->path, backing, info->offset);
		return -ENOSPC;
	}
	rs->sizelimit = limit;
	__atomic_store_n(&info->backing_size, backing, __ATOMIC_RELAXED);
	__atomic_store_n(&info->size, size, __ATOMIC_RELEASE);
	*size_out = size;
	return 0;
}

/* librbd's update watch (a thread of librbd's): the image's header
 * changed; tell the owner if its size did. */
static void rbd_watch_cb(void *arg)
{
	struct rbd_store *rs = arg;
	uint64_t backing;
	int ret;

	ret = rbd_get_size(rs->image, &backing);
	if (ret < 0) {
		aiol_warn("%s: size of the image after a change: %s", rs->path, strerror(-ret));
		return;
	}
	if (backing == __atomic_load_n(&rs->base.info.backing_size, __ATOMIC_RELAXED))
		return;
	aiol_info("%s: the image is now %" PRIu64 " bytes", rs->path, backing);
	rs->on_resize(rs->resize_arg);
}

static const struct aiol_store_ops rbd_store_ops = {
    .name = "rbd",
    .queue_create = rbd_queue_create,
    .queue_destroy = rbd_queue_destroy,
    .submit = rbd_submit,
    .busy = rbd_busy,
    .sync = rbd_sync,
    .refresh_size = rbd_refresh_size,
    .close = rbd_store_close,
};

/* ---- open ---- */

/* Connect to the cluster n names; messages name what was tried. */
static int rbd_connect(struct rbd_store *rs, const struct rbd_name *n)
{
	char mons[256] = "";
	int ret;

	ret = rados_create(&rs->cluster, n->id);
	if (ret < 0) {
		aiol_err("%s: rados_create: %s", rs->path, strerror(-ret));
		rs->cluster = NULL;
		return ret;
	}
	for (size_t i = 0; i < sizeof(rbd_defaults) / sizeof(rbd_defaults[0]); i++)
		rados_conf_set(rs->cluster, rbd_defaults[i][0], rbd_defaults[i][1]);
	ret = rados_conf_read_file(rs->cluster, n->conf);
	if (ret < 0 && (n->conf || ret != -ENOENT)) {
		aiol_err("%s: reading the Ceph configuration %s: %s", rs->path,
			 n->conf ? n->conf : "(default search path)", strerror(-ret));
		return ret;
	}
	for (unsigned int i = 0; i < n->nopts; i++) {
		ret = rados_conf_set(rs->cluster, n->key[i], n->val[i]);
		if (ret < 0) {
			aiol_err("%s: Ceph option %s=%s: %s", rs->path, n->key[i], n->val[i],
				 ret == -ENOENT ? "no such option" : strerror(-ret));
			return ret;
		}
	}
	rados_conf_get(rs->cluster, "mon_host", mons, sizeof(mons));
	ret = rados_connect(rs->cluster);
	if (ret < 0) {
		aiol_err("%s: cannot connect to the Ceph cluster (configuration %s, monitors "
			 "%s, user %s): %s",
			 rs->path, n->conf ? n->conf : "from the default search path",
			 mons[0] ? mons : "none configured", n->id ? n->id : "admin",
			 strerror(-ret));
		return ret;
	}
	return 0;
}

/* The visible window, as for files (probe.c). */
static int rbd_window(struct rbd_store *rs, const struct aiol_open_opts *o, uint64_t backing)
{
	struct aiol_dev_info *info = &rs->base.info;
	uint64_t size, end;

	if (o->offset >= backing) {
		aiol_err("%s: offset %llu is past the end of the image (%llu bytes)", rs->path,
			 (unsigned long long)o->offset, (unsigned long long)backing);
		return -EINVAL;
	}
	size = backing - o->offset;
	if (o->sizelimit && o->sizelimit < size)
		size = o->sizelimit;
	if (__builtin_add_overflow(o->offset, size, &end) || end > backing || size == 0) {
		aiol_err("%s: offset %llu and size limit %llu leave no bytes visible", rs->path,
			 (unsigned long long)o->offset, (unsigned long long)o->sizelimit);
		return -EINVAL;
	}
	info->size = size;
	info->offset = o->offset;
	info->backing_size = backing;
	rs->sizelimit = o->sizelimit;
	return 0;
}

int aiol_rbd_store_open(const char *name, const struct aiol_open_opts *opts,
			struct aiol_store **out)
{
	struct rbd_store *rs;
	struct rbd_name n;
	char err[256];
	uint64_t size = 0, stripe_count = 1;
	int ret, plen;

	*out = NULL;
	ret = rbd_name_parse(name, &n, err, sizeof(err));
	if (ret < 0) {
		aiol_err("%s: %s", name, ret == -ENOMEM ? strerror(ENOMEM) : err);
		return ret;
	}
	if (opts->block_size != 0 && opts->block_size != 512 && opts->block_size != 4096) {
		aiol_err("%s: block size %u is not 512 or 4096", name, opts->block_size);
		ret = -EINVAL;
		goto out_name;
	}
	rs = calloc(1, sizeof(*rs));
	if (!rs) {
		ret = -ENOMEM;
		goto out_name;
	}
	rs->efd = -1;
	pthread_mutex_init(&rs->st_mu, NULL);
	plen = asprintf(&rs->path, "rbd:%s/%s%s%s%s%s", n.pool, n.ns ? n.ns : "", n.ns ? "/" : "",
			n.image, n.snap ? "@" : "", n.snap ? n.snap : "");
	if (plen < 0) {
		rs->path = NULL;
		ret = -ENOMEM;
		goto err;
	}

	ret = rbd_connect(rs, &n);
	if (ret < 0)
		goto err;
	ret = rados_ioctx_create(rs->cluster, n.pool, &rs->ioctx);
	if (ret < 0) {
		rs->ioctx = NULL;
		if (ret == -ENOENT)
			aiol_err("%s: the cluster has no pool '%s'", rs->path, n.pool);
		else
			aiol_err("%s: opening pool '%s': %s", rs->path, n.pool, strerror(-ret));
		goto err;
	}
	if (n.ns)
		rados_ioctx_set_namespace(rs->ioctx, n.ns);
	if (n.snap || opts->read_only)
		ret = rbd_open_read_only(rs->ioctx, n.image, &rs->image, n.snap);
	else
		ret = rbd_open(rs->ioctx, n.image, &rs->image, NULL);
	if (ret < 0) {
		rs->image = NULL;
		if (ret == -ENOENT && n.snap)
			aiol_err("%s: pool '%s' has no image '%s' with a snapshot '%s'", rs->path,
				 n.pool, n.image, n.snap);
		else if (ret == -ENOENT)
			aiol_err("%s: pool '%s'%s%s has no image '%s'", rs->path, n.pool,
				 n.ns ? ", namespace " : "", n.ns ? n.ns : "", n.image);
		else
			aiol_err("%s: opening the image: %s", rs->path, strerror(-ret));
		goto err;
	}
	ret = rbd_get_size(rs->image, &size);
	if (ret < 0) {
		aiol_err("%s: size of the image: %s", rs->path, strerror(-ret));
		goto err;
	}
	ret = rbd_window(rs, opts, size);
	if (ret < 0)
		goto err;
	rbd_get_stripe_count(rs->image, &stripe_count);

	rs->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rs->efd < 0) {
		ret = -errno;
		aiol_err("eventfd: %m");
		goto err;
	}
	ret = rbd_set_image_notification(rs->image, rs->efd, EVENT_TYPE_EVENTFD);
	if (ret < 0) {
		aiol_err("%s: rbd_set_image_notification: %s", rs->path, strerror(-ret));
		goto err;
	}

	rs->base.ops = &rbd_store_ops;
	rs->base.info.path = rs->path;
	rs->base.info.block_size = opts->block_size ? opts->block_size : 512;
	rs->base.info.dio_align = 1;
	rs->base.info.dio_mem_align = 1;
	rs->base.info.direct = false;
	rs->base.info.read_only = opts->read_only || n.snap;
	rs->base.info.is_blockdev = false;
	rs->base.info.engine = AIOL_ENGINE_RBD;
	rs->base.caps = AIOL_STORE_FUA | AIOL_STORE_FLUSH | AIOL_STORE_DISCARD | AIOL_STORE_ZERO |
			AIOL_STORE_FAST_ZERO;
	/* Extents are reported object by object, in order, only without
	 * fancy striping. */
	if (stripe_count <= 1)
		rs->base.caps |= AIOL_STORE_EXTENTS;
	rs->base.discard_align = 1;
	rs->base.max_depth = 0;
	/* A snapshot never changes size. */
	if (opts->on_resize && !n.snap) {
		rs->on_resize = opts->on_resize;
		rs->resize_arg = opts->resize_arg;
		ret = rbd_update_watch(rs->image, &rs->watch_handle, rbd_watch_cb, rs);
		if (ret < 0) {
			aiol_err("%s: rbd_update_watch: %s", rs->path, strerror(-ret));
			goto err;
		}
		rs->watching = true;
	}
	aiol_debug("%s: %" PRIu64 " bytes at offset %" PRIu64 " of %" PRIu64
		   ", block size %u%s, store caps 0x%x",
		   rs->path, rs->base.info.size, rs->base.info.offset, size,
		   rs->base.info.block_size, rs->base.info.read_only ? ", read-only" : "",
		   rs->base.caps);
	rbd_name_free(&n);
	*out = &rs->base;
	return 0;

err:
	rbd_store_free(rs);
out_name:
	rbd_name_free(&n);
	return ret;
}
