// SPDX-License-Identifier: MIT
/*
 * The io_uring backend (the default): every primitive is an SQE on the
 * queue's own loop ring, so disk I/O shares the thread's ring with the
 * frontend's socket I/O and nothing blocks the thread.  The backing fd is
 * a registered file when the ring has a sparse file table
 * (IOSQE_FIXED_FILE), and buffers that lie in the loop's registered arena
 * use READ_FIXED/WRITE_FIXED, as do requests on a buffer the kernel
 * registered (AIOL_F_FIXED_BUF: req->buf is then an offset into it).  Reads and writes (RWF_DSYNC for FUA),
 * fdatasync (IORING_FSYNC_DATASYNC), fallocate and fadvise are ring
 * operations; block status (lseek SEEK_DATA/SEEK_HOLE has no ring
 * operation) goes to a one-thread helper pool, started at the first block
 * status, whose result comes back through aiol_loop_post().
 *
 * Thread model: loop thread only (the helper is threads.c's pool).
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <sys/uio.h>

#include "aioloop/log.h"
#include "engine_internal.h"

static void uring_cqe(struct aiol_event *ev, int res, unsigned int cqe_flags)
{
	struct eng_priv *p = aiol_container_of(ev, struct eng_priv, ev);

	(void)cqe_flags;
	eng_io_done(eng_req_of_priv(p), res);
}

static int uring_init(struct aiol_queue *q)
{
	int slot = aiol_loop_file_register(q->loop, q->dev->fd);

	if (slot < 0)
		aiol_debug("%s: not a registered file (%d): using the plain fd", q->dev->path, slot);
	q->file_slot = slot >= 0 ? slot : -1;
	return 0;	/* the helper thread starts at the first block status */
}

static void uring_fini(struct aiol_queue *q)
{
	eng_pool_destroy(q->pool);
	q->pool = NULL;
	if (q->file_slot >= 0)
		aiol_loop_file_unregister(q->loop, q->file_slot);
	q->file_slot = -1;
}

/* Is [buf, buf + len) inside the loop's registered arena? */
static bool in_arena(struct aiol_loop *loop, const void *buf, uint64_t len)
{
	return aiol_loop_buf_index(loop, buf) == 0 &&
	       aiol_loop_buf_index(loop, (const char *)buf + len - 1) == 0;
}

static void uring_issue(struct aiol_queue *q, struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);
	struct eng_io *io = &p->io;
	struct io_uring_sqe *sqe;
	bool fixed = q->file_slot >= 0;
	int fd = fixed ? q->file_slot : q->dev->fd;

	if (io->kind == IO_BLKSTAT) {
		int ret = q->pool ? 0 : eng_pool_create(q, 1, &q->pool);

		if (ret < 0)
			eng_io_done_later(req, ret);
		else
			eng_pool_issue(q->pool, req);
		return;
	}
	p->ev.fn = uring_cqe;
	sqe = aiol_loop_sqe(q->loop, &p->ev);
	switch (io->kind) {
	case IO_READ:
		if (req->flags & AIOL_F_FIXED_BUF)
			io_uring_prep_read_fixed(sqe, fd, io->buf, (unsigned int)io->len, io->off,
						 req->buf_index);
		else if (in_arena(q->loop, io->buf, io->len))
			io_uring_prep_read_fixed(sqe, fd, io->buf, (unsigned int)io->len, io->off, 0);
		else
			io_uring_prep_read(sqe, fd, io->buf, (unsigned int)io->len, io->off);
		break;
	case IO_WRITE:
		if (req->flags & AIOL_F_FIXED_BUF)
			io_uring_prep_write_fixed(sqe, fd, io->buf, (unsigned int)io->len, io->off,
						  req->buf_index);
		else if (in_arena(q->loop, io->buf, io->len))
			io_uring_prep_write_fixed(sqe, fd, io->buf, (unsigned int)io->len, io->off, 0);
		else
			io_uring_prep_write(sqe, fd, io->buf, (unsigned int)io->len, io->off);
		if (io->fua)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case IO_FSYNC:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case IO_FALLOC:
		io_uring_prep_fallocate(sqe, fd, io->mode, (off_t)io->off, (off_t)io->len);
		break;
	case IO_FADVISE:
	default:
		io_uring_prep_fadvise(sqe, fd, io->off, (off_t)io->len, POSIX_FADV_WILLNEED);
		break;
	}
	if (fixed)
		sqe->flags |= IOSQE_FIXED_FILE;
}

const struct eng_backend eng_backend_uring = {
	.name = "uring",
	.init = uring_init,
	.fini = uring_fini,
	.issue = uring_issue,
};
