// SPDX-License-Identifier: MIT
/*
 * The file store's ops table (aioloop/store.h): a store queue runs the
 * backend chosen at open (io_uring, Linux AIO, a thread pool, or
 * synchronous calls on the loop thread), each in its own file behind
 * struct file_backend (file.h).  The synchronous backend completes inside
 * submit(); a trampoline here runs its primitives one after the other, so
 * that a completion that submits the next primitive does not recurse.
 *
 * Thread model: a store queue is used by its loop thread only; the store
 * (fd, path, geometry) is shared and immutable but for its caps.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "file.h"

static int file_queue_create(struct aiol_store *st, struct aiol_loop *loop, unsigned int depth,
			     struct aiol_store_queue **out)
{
	struct file_store *fs = file_store_of(st);
	struct file_queue *fq;
	int ret;

	*out = NULL;
	fq = calloc(1, sizeof(*fq));
	if (!fq)
		return -ENOMEM;
	aiol_store_queue_init(&fq->base, st, loop, depth);
	fq->fs = fs;
	fq->file_slot = -1;
	STAILQ_INIT(&fq->tramp);
	switch (st->info.engine) {
	case AIOL_ENGINE_URING:
		fq->be = &file_backend_uring;
		break;
	case AIOL_ENGINE_AIO:
		fq->be = &file_backend_aio;
		break;
	case AIOL_ENGINE_THREADS:
		fq->be = &file_backend_threads;
		break;
	case AIOL_ENGINE_SYNC:
	default:
		fq->be = &file_backend_sync;
		break;
	}
	ret = fq->be->init(fq);
	if (ret < 0) {
		aiol_err("%s: cannot start the %s engine: %s", fs->path, fq->be->name,
			 strerror(-ret));
		free(fq);
		return ret;
	}
	*out = &fq->base;
	return 0;
}

static void file_queue_destroy(struct aiol_store_queue *sq)
{
	struct file_queue *fq = file_queue_of(sq);

	fq->be->fini(fq);
	free(fq);
}

static void file_submit(struct aiol_store_queue *sq, struct aiol_store_io *io)
{
	struct file_queue *fq = file_queue_of(sq);

	if (!fq->be->inline_exec) {
		fq->be->issue(fq, io);
		return;
	}
	/* Inline backend: run primitives one after the other from a loop
	 * rather than recursing through the completion. */
	STAILQ_INSERT_TAIL(&fq->tramp, io, link);
	if (fq->in_trampoline)
		return;
	fq->in_trampoline = true;
	while (!STAILQ_EMPTY(&fq->tramp)) {
		struct aiol_store_io *n = STAILQ_FIRST(&fq->tramp);

		STAILQ_REMOVE_HEAD(&fq->tramp, link);
		fq->be->issue(fq, n);
	}
	fq->in_trampoline = false;
}

static bool file_busy(const struct aiol_store_queue *sq)
{
	const struct file_queue *fq = aiol_container_of(sq, struct file_queue, base);

	return fq->be->busy && fq->be->busy(fq);
}

static int file_sync(struct aiol_store *st)
{
	struct file_store *fs = file_store_of(st);

	if (fdatasync(fs->fd) < 0) {
		int ret = -errno;

		aiol_err("%s: fdatasync: %m", fs->path);
		return ret;
	}
	return 0;
}

static void file_close(struct aiol_store *st)
{
	struct file_store *fs = file_store_of(st);

	close(fs->fd);
	free(fs->path);
	free(fs);
}

const struct aiol_store_ops file_store_ops = {
    .name = "file",
    .queue_create = file_queue_create,
    .queue_destroy = file_queue_destroy,
    .submit = file_submit,
    .busy = file_busy,
    .sync = file_sync,
    .close = file_close,
};
