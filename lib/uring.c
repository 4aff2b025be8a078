// SPDX-License-Identifier: MIT
/*
 * The file store's io_uring backend (the default): every primitive is an SQE on the
 * queue's own loop ring, so disk I/O shares the thread's ring with the
 * frontend's socket I/O and nothing blocks the thread.  The backing fd is
 * a registered file when the ring has a sparse file table
 * (IOSQE_FIXED_FILE), and buffers that lie in the loop's registered arena
 * use READ_FIXED/WRITE_FIXED, as do primitives on a buffer the kernel
 * registered in the ring's table (AIOL_F_FIXED_BUF: io->buf is then an
 * offset into buffer io->buf_index).  Reads and writes (RWF_DSYNC for FUA),
 * fdatasync (IORING_FSYNC_DATASYNC), fallocate and fadvise are ring
 * operations; block status (lseek SEEK_DATA/SEEK_HOLE has no ring
 * operation) goes to a one-thread helper pool, started at the first block
 * status, whose result comes back through the loop's inbox.
 *
 * Thread model: loop thread only (the helper is threads.c's pool).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <liburing.h>
#include <sys/uio.h>

#include "aioloop/log.h"
#include "file.h"

static void uring_cqe(struct aiol_event *ev, int res, unsigned int cqe_flags)
{
	struct aiol_store_io *io = aiol_container_of(ev, struct aiol_store_io, ev);

	(void)cqe_flags;
	aiol_store_complete(io, res);
}

static int uring_init(struct file_queue *fq)
{
	int slot = aiol_loop_file_register(fq->base.loop, fq->fs->fd);

	if (slot < 0)
		aiol_debug("%s: not a registered file (%d): using the plain fd", fq->fs->path,
			   slot);
	fq->file_slot = slot >= 0 ? slot : -1;
	return 0;	/* the helper thread starts at the first block status */
}

static void uring_fini(struct file_queue *fq)
{
	file_pool_destroy(fq->pool);
	fq->pool = NULL;
	if (fq->file_slot >= 0)
		aiol_loop_file_unregister(fq->base.loop, fq->file_slot);
	fq->file_slot = -1;
}

/* Is [buf, buf + len) inside the loop's registered arena? */
static bool in_arena(struct aiol_loop *loop, const void *buf, uint64_t len)
{
	return aiol_loop_buf_index(loop, buf) == 0 &&
	       aiol_loop_buf_index(loop, (const char *)buf + len - 1) == 0;
}

static void uring_issue(struct file_queue *fq, struct aiol_store_io *io)
{
	struct aiol_loop *loop = fq->base.loop;
	struct io_uring_sqe *sqe;
	bool fixed = fq->file_slot >= 0;
	int fd = fixed ? fq->file_slot : fq->fs->fd;

	if (io->op == AIOL_SIO_EXTENTS) {
		int ret = fq->pool ? 0 : file_pool_create(fq, 1, &fq->pool);

		if (ret < 0)
			aiol_store_complete_later(&fq->base, io, ret);
		else
			file_pool_issue(fq->pool, io);
		return;
	}
	io->ev.fn = uring_cqe;
	sqe = aiol_loop_sqe(loop, &io->ev);
	switch (io->op) {
	case AIOL_SIO_READ:
		if (io->flags & AIOL_F_FIXED_BUF)
			io_uring_prep_read_fixed(sqe, fd, io->buf, (unsigned int)io->len, io->off,
						 io->buf_index);
		else if (in_arena(loop, io->buf, io->len))
			io_uring_prep_read_fixed(sqe, fd, io->buf, (unsigned int)io->len, io->off, 0);
		else
			io_uring_prep_read(sqe, fd, io->buf, (unsigned int)io->len, io->off);
		break;
	case AIOL_SIO_WRITE:
		if (io->flags & AIOL_F_FIXED_BUF)
			io_uring_prep_write_fixed(sqe, fd, io->buf, (unsigned int)io->len, io->off,
						  io->buf_index);
		else if (in_arena(loop, io->buf, io->len))
			io_uring_prep_write_fixed(sqe, fd, io->buf, (unsigned int)io->len, io->off, 0);
		else
			io_uring_prep_write(sqe, fd, io->buf, (unsigned int)io->len, io->off);
		if (io->flags & AIOL_F_FUA)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case AIOL_SIO_FLUSH:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case AIOL_SIO_DISCARD:
		io_uring_prep_fallocate(sqe, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)io->off, (off_t)io->len);
		break;
	case AIOL_SIO_ZERO:
		io_uring_prep_fallocate(sqe, fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					(off_t)io->off, (off_t)io->len);
		break;
	case AIOL_SIO_CACHE:
	default:
		io_uring_prep_fadvise(sqe, fd, io->off, (off_t)io->len, POSIX_FADV_WILLNEED);
		break;
	}
	if (fixed)
		sqe->flags |= IOSQE_FIXED_FILE;
}

const struct file_backend file_backend_uring = {
    .name = "uring",
    .init = uring_init,
    .fini = uring_fini,
    .issue = uring_issue,
};
