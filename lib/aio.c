// SPDX-License-Identifier: MIT
/*
 * The file store's Linux AIO backend: reads and writes (RWF_DSYNC in aio_rw_flags for
 * FUA) are iocbs submitted with io_submit() on an O_DIRECT fd (probe.c
 * turns aio on a buffered dev into the threads engine, as buffered AIO
 * blocks in io_submit).  Every iocb signals an eventfd; the loop ring has
 * an IORING_OP_READ on that eventfd while iocbs are outstanding, and its
 * completion reaps with a non-blocking io_getevents().  What AIO cannot do
 * (fallocate, fdatasync, fadvise, block status) goes to a one-thread helper
 * pool (threads.c).
 *
 * iocbs live in a table of `depth` slots allocated when the store queue is
 * created; the engine has at most depth primitives in flight, so a slot is
 * always free when one is needed.  The eventfd read is armed only while
 * iocbs are outstanding, and the engine holds the last request's done()
 * while it is armed (aio_busy, then aiol_store_queue_idle), so a queue
 * whose requests have all completed has nothing left on the ring and can
 * be destroyed.  This is also the pattern for a store whose library
 * signals an eventfd of its own.
 *
 * Thread model: loop thread only.
 */
#include <errno.h>
#include <libaio.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "file.h"

#define REAP_BATCH 64

struct file_aio {
	struct file_queue *fq;
	io_context_t ctx;
	int efd;
	uint64_t efd_val;
	struct aiol_event efd_ev;
	bool armed;
	unsigned int outstanding;
	unsigned int nslots, nfree;
	uint32_t *free_tags;
	struct iocb *iocbs;
};

static void aio_reap(struct aiol_event *ev, int res, unsigned int cqe_flags);

static void aio_arm(struct file_aio *a)
{
	struct io_uring_sqe *sqe;

	if (a->armed || !a->outstanding)
		return;
	sqe = aiol_loop_sqe(a->fq->base.loop, &a->efd_ev);
	io_uring_prep_read(sqe, a->efd, &a->efd_val, sizeof(a->efd_val), 0);
	a->armed = true;
}

static void aio_reap(struct aiol_event *ev, int res, unsigned int cqe_flags)
{
	struct file_aio *a = aiol_container_of(ev, struct file_aio, efd_ev);
	struct io_event events[REAP_BATCH];
	struct timespec zero = { 0, 0 };
	int n;

	(void)cqe_flags;
	a->armed = false;
	if (res < 0 && res != -EAGAIN && res != -EINTR)
		aiol_err("%s: reading the AIO eventfd: %s", a->fq->fs->path, strerror(-res));
	do {
		n = io_getevents(a->ctx, 0, REAP_BATCH, events, &zero);
		if (n < 0) {
			if (n != -EINTR)
				aiol_err("%s: io_getevents: %s", a->fq->fs->path, strerror(-n));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct aiol_store_io *io = events[i].data;
			uint32_t tag = (uint32_t)(events[i].obj - a->iocbs);

			a->free_tags[a->nfree++] = tag;
			a->outstanding--;
			aiol_store_complete(io, (int)(long)events[i].res);
		}
	} while (n == REAP_BATCH);
	aio_arm(a);
	/* A request issued from a completion above may have armed the read
	 * and completed in the same pass: the read would then wait for an
	 * iocb that never comes, and the queue could not be destroyed.  Wake
	 * it now; the last done() is held until it is back (aio_busy). */
	if (a->armed && !a->outstanding) {
		uint64_t one = 1;

		if (write(a->efd, &one, sizeof(one)) < 0)
			aiol_err("%s: AIO eventfd write: %m", a->fq->fs->path);
	}
	if (!a->armed)
		aiol_store_queue_idle(&a->fq->base);
}

static bool aio_busy(const struct file_queue *fq)
{
	return fq->aio && fq->aio->armed;
}

static int aio_init(struct file_queue *fq)
{
	struct file_aio *a;
	int ret;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->fq = fq;
	a->efd = -1;
	a->efd_ev.fn = aio_reap;
	a->nslots = fq->base.depth;
	a->iocbs = calloc(a->nslots, sizeof(*a->iocbs));
	a->free_tags = calloc(a->nslots, sizeof(*a->free_tags));
	if (!a->iocbs || !a->free_tags) {
		ret = -ENOMEM;
		goto err;
	}
	for (unsigned int i = 0; i < a->nslots; i++)
		a->free_tags[i] = a->nslots - 1 - i;
	a->nfree = a->nslots;
	ret = io_setup((int)a->nslots, &a->ctx);
	if (ret < 0) {
		aiol_err("io_setup(%u): %s", a->nslots, strerror(-ret));
		goto err;
	}
	a->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->efd < 0) {
		ret = -errno;
		aiol_err("eventfd: %m");
		goto err_ctx;
	}
	ret = file_pool_create(fq, 1, &fq->pool);
	if (ret < 0)
		goto err_efd;
	fq->aio = a;
	return 0;

err_efd:
	close(a->efd);
err_ctx:
	io_destroy(a->ctx);
err:
	free(a->free_tags);
	free(a->iocbs);
	free(a);
	return ret;
}

static void aio_fini(struct file_queue *fq)
{
	struct file_aio *a = fq->aio;

	file_pool_destroy(fq->pool);
	fq->pool = NULL;
	if (!a)
		return;
	if (a->armed) {
		/* The ring still points at a: leak it rather than free it. */
		aiol_err("%s: AIO queue destroyed with I/O in flight", fq->fs->path);
		return;
	}
	io_destroy(a->ctx);
	close(a->efd);
	free(a->free_tags);
	free(a->iocbs);
	free(a);
	fq->aio = NULL;
}

static void aio_issue(struct file_queue *fq, struct aiol_store_io *io)
{
	struct file_aio *a = fq->aio;
	int fd = fq->fs->fd;
	struct iocb *iocb;
	uint32_t tag;
	int ret;

	if (io->op != AIOL_SIO_READ && io->op != AIOL_SIO_WRITE) {
		file_pool_issue(fq->pool, io);
		return;
	}
	assert(a->nfree > 0);
	tag = a->free_tags[--a->nfree];
	iocb = &a->iocbs[tag];
	if (io->op == AIOL_SIO_READ) {
		io_prep_pread(iocb, fd, io->buf, io->len, (long long)io->off);
	} else {
		io_prep_pwrite(iocb, fd, io->buf, io->len, (long long)io->off);
		if (io->flags & AIOL_F_FUA)
			iocb->aio_rw_flags = RWF_DSYNC;
	}
	iocb->data = io;
	io_set_eventfd(iocb, a->efd);
	io->tag = tag;
	ret = io_submit(a->ctx, 1, &iocb);
	if (ret == 1) {
		a->outstanding++;
		aio_arm(a);
		return;
	}
	a->free_tags[a->nfree++] = tag;
	/* Report on the loop, not from inside issue(); -EAGAIN is retried. */
	aiol_store_complete_later(&fq->base, io, ret < 0 ? ret : -EAGAIN);
}

const struct file_backend file_backend_aio = {
	.name = "aio",
	.init = aio_init,
	.fini = aio_fini,
	.issue = aio_issue,
	.busy = aio_busy,
};
