/* SPDX-License-Identifier: MIT */
/*
 * Private structures of the file store (aioloop/store.h): a regular file or
 * block device opened and probed by probe.c, run by file.c through one of
 * four backends, each in its own file (uring.c, aio.c, threads.c, sync.c)
 * behind the private ops table struct file_backend.  Never installed.
 *
 * A backend runs one primitive (struct aiol_store_io) on the fd and
 * reports its result with aiol_store_complete() (or _later / _post) on the
 * loop thread, never from inside issue() unless it is `inline_exec`
 * (sync), whose results file.c feeds back through a trampoline.  What has
 * no asynchronous form in a backend goes to the worker pool of threads.c,
 * which runs file_exec() and posts the result back.
 *
 * Dependencies point one way: file.c -> the backends -> threads.c (pool)
 * -> file_exec() in exec.c; probe.c opens (and names the ops table of
 * file.c).  None of them calls the engine.
 */
#ifndef AIOLOOP_FILE_H
#define AIOLOOP_FILE_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "aioloop/store.h"

struct file_store {
	struct aiol_store base;
	int fd;
	unsigned int threads;  /* threads engine: pool size */
	unsigned int bdev_lbs; /* logical block size of a block device backing, else 1 */
	uint64_t sizelimit;    /* as opened or last refreshed, 0: none */
	char *path;
};

static inline struct file_store *file_store_of(struct aiol_store *st)
{
	return aiol_container_of(st, struct file_store, base);
}

struct file_pool;
struct file_aio;
struct file_queue;

struct file_backend {
	const char *name;
	bool inline_exec;
	int (*init)(struct file_queue *fq);
	void (*fini)(struct file_queue *fq);
	void (*issue)(struct file_queue *fq, struct aiol_store_io *io);
	/* Optional: see aiol_store_ops.busy. */
	bool (*busy)(const struct file_queue *fq);
};

extern const struct file_backend file_backend_uring;
extern const struct file_backend file_backend_aio;
extern const struct file_backend file_backend_threads;
extern const struct file_backend file_backend_sync;
extern const struct aiol_store_ops file_store_ops;

struct file_queue {
	struct aiol_store_queue base;
	struct file_store *fs;
	const struct file_backend *be;
	/* inline (sync) trampoline */
	bool in_trampoline;
	STAILQ_HEAD(, aiol_store_io) tramp;
	struct file_pool *pool; /* threads backend, or helper of uring/aio */
	int file_slot;		/* uring: registered file or -1 */
	struct file_aio *aio;
};

static inline struct file_queue *file_queue_of(struct aiol_store_queue *sq)
{
	return aiol_container_of(sq, struct file_queue, base);
}

/* exec.c: run io synchronously with blocking calls; returns bytes
 * (READ/WRITE) or 0, or -errno.  Thread-safe: reads only the store. */
int file_exec(const struct file_store *fs, struct aiol_store_io *io);

/* threads.c: a pool of worker threads running file_exec(), posting
 * results back to the queue's loop. */
int file_pool_create(struct file_queue *fq, unsigned int nthreads, struct file_pool **out);
void file_pool_destroy(struct file_pool *pool);
void file_pool_issue(struct file_pool *pool, struct aiol_store_io *io);

#endif
