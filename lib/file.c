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
 * (fd, path, geometry) is shared and immutable but for its caps and its
 * size (file_refresh_size, control path).
 */
#include <errno.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
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

	/* A registered buffer is the ring backend's alone (AIOL_STORE_FIXED_BUF). */
	if ((io->flags & AIOL_F_FIXED_BUF) && fq->be != &file_backend_uring) {
		aiol_store_complete_later(sq, io, -EINVAL);
		return;
	}
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

/* Online resize: the backing's size now (st_size, or BLKGETSIZE64 for a
 * block device) gives the window, as at open. */
static int file_refresh_size(struct aiol_store *st, uint64_t sizelimit, uint64_t *size_out)
{
	struct file_store *fs = file_store_of(st);
	struct aiol_dev_info *info = &st->info;
	uint64_t backing, size, limit = sizelimit ? sizelimit : fs->sizelimit;
	struct stat sb;

	if (fstat(fs->fd, &sb) < 0) {
		int ret = -errno;

		aiol_err("%s: %m", fs->path);
		return ret;
	}
	if (S_ISBLK(sb.st_mode)) {
		if (ioctl(fs->fd, BLKGETSIZE64, &backing) < 0) {
			int ret = -errno;

			aiol_err("%s: BLKGETSIZE64: %m", fs->path);
			return ret;
		}
	} else {
		backing = (uint64_t)sb.st_size;
	}
	size = backing > info->offset ? backing - info->offset : 0;
	if (limit && limit < size)
		size = limit;
	size -= size % info->dio_align;
	if (size == 0) {
		aiol_err("%s: a backing of %llu bytes leaves nothing visible after offset %llu",
			 fs->path, (unsigned long long)backing, (unsigned long long)info->offset);
		return -ENOSPC;
	}
	fs->sizelimit = limit;
	__atomic_store_n(&info->backing_size, backing, __ATOMIC_RELAXED);
	__atomic_store_n(&info->size, size, __ATOMIC_RELEASE);
	*size_out = size;
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
    .refresh_size = file_refresh_size,
    .close = file_close,
};
