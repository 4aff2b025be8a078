// SPDX-License-Identifier: MIT
/*
 * One ublk hardware queue: a thread with its own aiol_loop (an io_uring set
 * up with IORING_SETUP_SQE128, so that it carries uring_cmds) on which both
 * the ublk I/O commands and the engine's backing I/O are submitted.
 *
 * Per tag (preallocated, identified by the struct aiol_event in user_data):
 *   FETCH_REQ (once) --CQE--> the descriptor says what the kernel wants;
 *   aiol_submit() on the queue's aiol_queue --done()--> COMMIT_AND_FETCH_REQ
 *   with the result, which is also the fetch of the tag's next request.
 * The data path (datapath.c) decides where the data is:
 *   copy: every tag has a buffer of max_io_buf_bytes carved from the
 *     loop's arena, given to the kernel with each FETCH/COMMIT; the kernel
 *     copies WRITE data in before the CQE and READ data out at the commit.
 *   user copy: the same buffers, filled (WRITE) and emptied (READ) by
 *     pread/pwrite on /dev/ublkcN at the tag's offset, on this thread.
 *   auto buffer registration: the ring has a sparse buffer table, the
 *     arena in slot 0 and slot 1 + tag for each tag; FETCH/COMMIT name
 *     that slot in sqe->addr and the kernel registers the request's pages
 *     there before the CQE (and unregisters them at the commit).  The
 *     engine reads and writes them with READ_FIXED/WRITE_FIXED
 *     (AIOL_F_FIXED_BUF): no copy, no buffer of ours.
 *   zero copy: the same slots, filled by a REGISTER_IO_BUF command before
 *     the backing I/O and emptied by UNREGISTER_IO_BUF before the commit.
 * Queue threads poll their ring for poll_us before sleeping (the loop's
 * poll_us): a completion then costs no wake-up.
 *
 * Thread model: everything here runs on the queue thread except
 * ublk_queue_start/stop/join, called from the control thread; stop crosses
 * over with aiol_loop_post().  The kernel binds a queue to the task that
 * sent its FETCHes (before 6.16), so no SQPOLL and no other thread may
 * touch this ring.
 */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "aioloop/loop.h"
#include "ublk.h"

enum tag_state {
	TAG_IDLE = 0, /* no command with the kernel (before FETCH) */
	TAG_KERNEL,   /* FETCH or COMMIT_AND_FETCH outstanding */
	TAG_BACKEND,  /* request in the engine */
	TAG_DEAD,     /* aborted: the queue is going away */
};

struct ublk_tag {
	struct aiol_event ev;	  /* completion of this tag's uring_cmd */
	struct aiol_event reg_ev; /* zero copy: completion of REGISTER_IO_BUF */
	struct aiol_req req;
	struct ublk_queue *q;
	void *buf;
	uint16_t tag;
	uint8_t state;
	uint8_t op;
	uint64_t t0; /* stats: when the request arrived (ns) */
};

struct ublk_queue {
	struct ublk_queue_cfg cfg;
	pthread_t thread;
	struct aiol_loop *loop;
	pthread_mutex_t lock; /* loop pointer against stop() after teardown */
	struct aiol_queue *aq;
	const struct ublksrv_io_desc *descs;
	size_t descs_len;
	struct ublk_tag *tags;
	unsigned int nr_dead;
	unsigned int nr_backend;
	atomic_bool stop;
	atomic_bool force;
	struct aiol_work wake_stop, wake_force;
	int result;
	struct stats_shard stats; /* this queue's, in cfg.stats if any */
};

/* ublk op -> stats op; -1: not counted. */
static int tag_stats_op(uint8_t op)
{
	switch (op) {
	case UBLK_IO_OP_READ:
		return STATS_READ;
	case UBLK_IO_OP_WRITE:
		return STATS_WRITE;
	case UBLK_IO_OP_FLUSH:
		return STATS_FLUSH;
	case UBLK_IO_OP_DISCARD:
		return STATS_TRIM;
	case UBLK_IO_OP_WRITE_ZEROES:
		return STATS_ZEROES;
	default:
		return -1;
	}
}

/* Queue a FETCH or COMMIT_AND_FETCH for t (loop thread). */
static void tag_cmd(struct ublk_queue *q, struct ublk_tag *t, unsigned int nr, int result);

/* Commit t's result, counting the request it ends. */
static void tag_commit(struct ublk_queue *q, struct ublk_tag *t, int result, uint64_t len)
{
	int op = tag_stats_op(t->op);

	if (op >= 0)
		stats_done(&q->stats, (enum stats_op)op, result < 0 ? result : 0, len,
			   stats_now_ns() - t->t0);
	tag_cmd(q, t, UBLK_IO_COMMIT_AND_FETCH_REQ, result);
}

static bool path_zero_copy(enum ublk_data_path dp)
{
	return dp == UBLK_DP_AUTO_BUF_REG || dp == UBLK_DP_ZERO_COPY;
}

/* The buffer-table slot of t's request (slot 0 is the arena). */
static uint16_t tag_buf_index(const struct ublk_tag *t)
{
	return (uint16_t)(t->tag + 1);
}

static size_t page_round(size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (n + pg - 1) & ~(pg - 1);
}

/* Queue a FETCH or COMMIT_AND_FETCH for t (loop thread). */
static void tag_cmd(struct ublk_queue *q, struct ublk_tag *t, unsigned int nr, int result)
{
	struct io_uring_sqe *sqe = aiol_loop_sqe(q->loop, &t->ev);
	struct ublksrv_io_cmd *cmd;

	memset(sqe, 0, 128);
	io_uring_sqe_set_data(sqe, &t->ev);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = q->cfg.cdev_fd;
	sqe->cmd_op =
	    q->cfg.ioctl_encode ? (unsigned int)_IOWR('u', nr, struct ublksrv_io_cmd) : nr;
	cmd = (struct ublksrv_io_cmd *)sqe->cmd;
	cmd->q_id = (uint16_t)q->cfg.q_id;
	cmd->tag = t->tag;
	cmd->result = result;
	if (q->cfg.data_path == UBLK_DP_COPY)
		cmd->addr = (uint64_t)(uintptr_t)t->buf;
	else if (q->cfg.data_path == UBLK_DP_AUTO_BUF_REG)
		sqe->addr = ublk_auto_buf_reg_addr(tag_buf_index(t), 0);
	t->state = TAG_KERNEL;
}

/* Zero copy: REGISTER_IO_BUF (ev: the tag's reg_ev) or UNREGISTER_IO_BUF
 * (no completion wanted) of t's request at its slot. */
static void tag_buf_cmd(struct ublk_queue *q, struct ublk_tag *t, bool reg)
{
	struct io_uring_sqe *sqe = aiol_loop_sqe(q->loop, reg ? &t->reg_ev : NULL);
	struct ublksrv_io_cmd *cmd;

	memset(sqe, 0, 128);
	io_uring_sqe_set_data(sqe, reg ? &t->reg_ev : NULL);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = q->cfg.cdev_fd;
	sqe->cmd_op = reg ? UBLK_U_IO_REGISTER_IO_BUF : UBLK_U_IO_UNREGISTER_IO_BUF;
	cmd = (struct ublksrv_io_cmd *)sqe->cmd;
	cmd->q_id = (uint16_t)q->cfg.q_id;
	cmd->tag = t->tag;
	cmd->addr = tag_buf_index(t);
}

/* User copy: move len bytes between t's buffer and its request. */
static int tag_user_copy(struct ublk_queue *q, struct ublk_tag *t, bool to_request, size_t len)
{
	off_t pos = (off_t)ublk_user_copy_pos((uint16_t)q->cfg.q_id, t->tag);
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		if (to_request)
			n = pwrite(q->cfg.cdev_fd, (char *)t->buf + done, len - done,
				   pos + (off_t)done);
		else
			n = pread(q->cfg.cdev_fd, (char *)t->buf + done, len - done,
				  pos + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			AIOL_DEBUG_DATA("ublk q%u tag %u: user copy: %s", q->cfg.q_id, t->tag,
					n < 0 ? strerror(errno) : "nothing moved");
			return -EIO;
		}
		done += (size_t)n;
	}
	return 0;
}

/* Engine completion: commit the result (never 0 for a READ/WRITE). */
static void tag_done(struct aiol_req *req, int res)
{
	struct ublk_tag *t = req->user;
	struct ublk_queue *q = t->q;

	q->nr_backend--;
	if (t->op == UBLK_IO_OP_READ || t->op == UBLK_IO_OP_WRITE) {
		if (res == 0 && t->op == UBLK_IO_OP_READ && q->cfg.data_path == UBLK_DP_USER_COPY)
			res = tag_user_copy(q, t, true, req->len);
		if (res == 0)
			res = (int)req->len;
		if (q->cfg.data_path == UBLK_DP_ZERO_COPY)
			tag_buf_cmd(q, t, false);
	}
	if (res < 0)
		AIOL_DEBUG_DATA("ublk q%u tag %u: op %u off %llu len %llu: %s", q->cfg.q_id, t->tag,
				t->op, (unsigned long long)req->off, (unsigned long long)req->len,
				strerror(-res));
	tag_commit(q, t, res, req->len);
}

/* A request arrived on t: hand it to the engine, or refuse it. */
static void tag_handle(struct ublk_queue *q, struct ublk_tag *t)
{
	const struct ublksrv_io_desc *iod = &q->descs[t->tag];
	uint32_t op_flags = iod->op_flags;
	uint64_t len = (uint64_t)iod->nr_sectors << 9;
	struct aiol_req *r = &t->req;

	memset(r, 0, sizeof(*r));
	t->op = op_flags & 0xff;
	t->t0 = stats_now_ns();
	if (tag_stats_op(t->op) >= 0)
		stats_start(&q->stats, (enum stats_op)tag_stats_op(t->op));
	r->off = iod->start_sector << 9;
	r->len = len;
	r->done = tag_done;
	r->user = t;
	switch (t->op) {
	case UBLK_IO_OP_READ:
	case UBLK_IO_OP_WRITE:
		if (len == 0 || len > q->cfg.buf_bytes || iod->start_sector > (UINT64_MAX >> 9)) {
			tag_commit(q, t, -EIO, len);
			return;
		}
		r->op = t->op == UBLK_IO_OP_READ ? AIOL_OP_READ : AIOL_OP_WRITE;
		r->buf = t->buf;
		if (t->op == UBLK_IO_OP_WRITE && (op_flags & UBLK_IO_F_FUA))
			r->flags |= AIOL_F_FUA;
		if (path_zero_copy(q->cfg.data_path)) {
			r->flags |= AIOL_F_FIXED_BUF;
			r->buf = NULL; /* offset 0 of the request's pages */
			r->buf_index = tag_buf_index(t);
		}
		if (q->cfg.data_path == UBLK_DP_USER_COPY && t->op == UBLK_IO_OP_WRITE &&
		    tag_user_copy(q, t, false, len) < 0) {
			tag_commit(q, t, -EIO, len);
			return;
		}
		if (q->cfg.data_path == UBLK_DP_ZERO_COPY) {
			/* the engine starts once the pages are in the slot */
			t->state = TAG_BACKEND;
			q->nr_backend++;
			tag_buf_cmd(q, t, true);
			return;
		}
		break;
	case UBLK_IO_OP_FLUSH:
		r->op = AIOL_OP_FLUSH;
		r->off = 0;
		r->len = 0;
		break;
	case UBLK_IO_OP_DISCARD:
		r->op = AIOL_OP_DISCARD;
		break;
	case UBLK_IO_OP_WRITE_ZEROES:
		r->op = AIOL_OP_WRITE_ZEROES;
		if (op_flags & UBLK_IO_F_NOUNMAP)
			r->flags |= AIOL_F_NO_UNMAP;
		break;
	default:
		tag_cmd(q, t, UBLK_IO_COMMIT_AND_FETCH_REQ, -EOPNOTSUPP);
		return;
	}
	t->state = TAG_BACKEND;
	q->nr_backend++;
	aiol_submit(q->aq, r);
}

/* Zero copy: the request's pages are registered (or not). */
static void tag_reg_cqe(struct aiol_event *ev, int res, unsigned int cqe_flags)
{
	struct ublk_tag *t = aiol_container_of(ev, struct ublk_tag, reg_ev);
	struct ublk_queue *q = t->q;

	(void)cqe_flags;
	if (res < 0) {
		aiol_err("ublk queue %u tag %u: REGISTER_IO_BUF: %s", q->cfg.q_id, t->tag,
			 strerror(-res));
		q->nr_backend--;
		tag_commit(q, t, -EIO, t->req.len);
		return;
	}
	aiol_submit(q->aq, &t->req);
}

static void tag_cqe(struct aiol_event *ev, int res, unsigned int cqe_flags)
{
	struct ublk_tag *t = aiol_container_of(ev, struct ublk_tag, ev);
	struct ublk_queue *q = t->q;

	(void)cqe_flags;
	if (res == UBLK_IO_RES_OK) {
		tag_handle(q, t);
		return;
	}
	if (res != UBLK_IO_RES_ABORT)
		aiol_err("ublk queue %u tag %u: io command failed: %s", q->cfg.q_id, t->tag,
			 strerror(-res));
	t->state = TAG_DEAD;
	q->nr_dead++;
}

static void queue_wake(struct aiol_work *w)
{
	(void)w; /* the loop iteration re-checks the stop flags */
}

static int queue_setup(struct ublk_queue *q)
{
	struct aiol_loop_opts lo = {0};
	struct aiol_queue_opts qo = {.depth = q->cfg.depth};
	struct aiol_loop *loop;
	off_t off;
	int ret;

	lo.entries = q->cfg.depth * 2 + 16;
	lo.arena_bytes = (size_t)q->cfg.depth * q->cfg.buf_bytes + (8u << 20);
	lo.flags = IORING_SETUP_SQE128;
	lo.poll_us = q->cfg.poll_us;
	if (path_zero_copy(q->cfg.data_path)) {
		/* the data stays in the kernel's pages: no tag buffers */
		lo.arena_bytes = 8u << 20;
		lo.kernel_bufs = q->cfg.depth;
	}
	ret = aiol_loop_create(&lo, &loop);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&q->lock);
	q->loop = loop;
	pthread_mutex_unlock(&q->lock);
	ret = aiol_queue_create(q->cfg.dev, loop, &qo, &q->aq);
	if (ret < 0) {
		aiol_err("ublk queue %u: engine queue: %s", q->cfg.q_id, strerror(-ret));
		return ret;
	}
	q->descs_len = page_round((size_t)q->cfg.depth * sizeof(struct ublksrv_io_desc));
	off = UBLKSRV_CMD_BUF_OFFSET +
	      (off_t)q->cfg.q_id *
		  (off_t)page_round(UBLK_MAX_QUEUE_DEPTH * sizeof(struct ublksrv_io_desc));
	q->descs =
	    mmap(NULL, q->descs_len, PROT_READ, MAP_SHARED | MAP_POPULATE, q->cfg.cdev_fd, off);
	if (q->descs == MAP_FAILED) {
		ret = -errno;
		q->descs = NULL;
		aiol_err("ublk queue %u: mmap of the descriptors: %m", q->cfg.q_id);
		return ret;
	}
	q->tags = calloc(q->cfg.depth, sizeof(*q->tags));
	if (!q->tags)
		return -ENOMEM;
	for (unsigned int i = 0; i < q->cfg.depth; i++) {
		struct ublk_tag *t = &q->tags[i];

		t->ev.fn = tag_cqe;
		t->reg_ev.fn = tag_reg_cqe;
		t->q = q;
		t->tag = (uint16_t)i;
		if (path_zero_copy(q->cfg.data_path))
			continue;
		t->buf = aiol_loop_buf_alloc(loop, q->cfg.buf_bytes);
		if (!t->buf) {
			aiol_err("ublk queue %u: no buffer for tag %u", q->cfg.q_id, i);
			return -ENOMEM;
		}
	}
	return 0;
}

static void queue_teardown(struct ublk_queue *q)
{
	struct aiol_loop *loop = q->loop;

	if (q->tags && loop)
		for (unsigned int i = 0; i < q->cfg.depth; i++)
			if (q->tags[i].buf)
				aiol_loop_buf_free(loop, q->tags[i].buf, q->cfg.buf_bytes);
	free(q->tags);
	q->tags = NULL;
	if (q->descs)
		munmap((void *)q->descs, q->descs_len);
	q->descs = NULL;
	if (q->aq)
		aiol_queue_destroy(q->aq);
	q->aq = NULL;
	/* Tearing the ring down cancels FETCHes still with the kernel. */
	pthread_mutex_lock(&q->lock);
	q->loop = NULL;
	pthread_mutex_unlock(&q->lock);
	aiol_loop_destroy(loop);
	/* The loop is gone: nothing writes the shard any more. */
	if (q->cfg.stats)
		stats_shard_detach(q->cfg.stats, &q->stats);
}

static void *queue_thread(void *arg)
{
	struct ublk_queue *q = arg;
	struct aiol_loop *loop;
	int ret;

	prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0); /* needs CAP_SYS_RESOURCE; best effort */
	ret = queue_setup(q);
	if (ret < 0) {
		q->cfg.started(q->cfg.arg, q, ret);
		goto out;
	}
	loop = q->loop;
	for (unsigned int i = 0; i < q->cfg.depth; i++)
		tag_cmd(q, &q->tags[i], UBLK_IO_FETCH_REQ, 0);
	ret = io_uring_submit(aiol_loop_ring(loop));
	if (ret < 0) {
		aiol_err("ublk queue %u: submitting FETCH: %s", q->cfg.q_id, strerror(-ret));
		q->cfg.started(q->cfg.arg, q, ret);
		goto out;
	}
	ret = 0;
	q->cfg.started(q->cfg.arg, q, 0);

	for (;;) {
		if (q->nr_backend == 0 && (q->nr_dead == q->cfg.depth || atomic_load(&q->force)))
			break;
		ret = aiol_loop_run_once(loop, true);
		if (ret < 0 && ret != -EINTR) {
			aiol_err("ublk queue %u: event loop: %s", q->cfg.q_id, strerror(-ret));
			break;
		}
		ret = 0;
	}
out:
	q->result = ret;
	queue_teardown(q);
	if (q->cfg.exited)
		q->cfg.exited(q->cfg.arg, q);
	return NULL;
}

int ublk_queue_start(const struct ublk_queue_cfg *cfg, struct ublk_queue **out)
{
	struct ublk_queue *q;
	int ret;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->cfg = *cfg;
	if (q->cfg.stats) {
		char label[32];

		snprintf(label, sizeof(label), "queue %u", q->cfg.q_id);
		stats_shard_attach(q->cfg.stats, &q->stats, false, label);
	}
	q->wake_stop.fn = queue_wake;
	q->wake_force.fn = queue_wake;
	pthread_mutex_init(&q->lock, NULL);
	ret = pthread_create(&q->thread, NULL, queue_thread, q);
	if (ret) {
		if (q->cfg.stats)
			stats_shard_detach(q->cfg.stats, &q->stats);
		pthread_mutex_destroy(&q->lock);
		free(q);
		return -ret;
	}
	*out = q;
	return 0;
}

void ublk_queue_stop(struct ublk_queue *q, bool force)
{
	pthread_mutex_lock(&q->lock);
	if (force && !atomic_exchange(&q->force, true) && q->loop)
		aiol_loop_post(q->loop, &q->wake_force);
	if (!atomic_exchange(&q->stop, true) && q->loop)
		aiol_loop_post(q->loop, &q->wake_stop);
	pthread_mutex_unlock(&q->lock);
}

int ublk_queue_join(struct ublk_queue *q)
{
	int ret;

	pthread_join(q->thread, NULL);
	ret = q->result;
	pthread_mutex_destroy(&q->lock);
	free(q);
	return ret;
}
