// SPDX-License-Identifier: MIT
/*
 * The file store's threads backend, and the worker pool that the uring and
 * aio backends use as their helper for what has no asynchronous form
 * (block status by lseek, and for aio also fallocate, fdatasync and
 * fadvise).
 *
 * Thread model: the loop thread hands ios to the pool through a FIFO under
 * a mutex and wakes one worker with a condition variable.  A worker runs
 * the primitive with a blocking call (file_exec(), which only reads the
 * immutable store and the io it was handed) and posts the result back with
 * aiol_store_complete_post(): the loop side takes no lock.  Workers block every signal, so signals keep going
 * to the program's own threads.  Lock order: pool->mu only.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "aioloop/log.h"
#include "file.h"

struct file_pool {
	struct file_queue *fq;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	STAILQ_HEAD(, aiol_store_io) todo;	/* guarded by mu */
	bool stop;			/* guarded by mu */
	unsigned int nthreads;
	pthread_t th[];
};

static void *pool_main(void *arg)
{
	struct file_pool *pool = arg;

	for (;;) {
		struct aiol_store_io *io;

		pthread_mutex_lock(&pool->mu);
		while (STAILQ_EMPTY(&pool->todo) && !pool->stop)
			pthread_cond_wait(&pool->cv, &pool->mu);
		io = STAILQ_FIRST(&pool->todo);
		if (!io) {
			pthread_mutex_unlock(&pool->mu);
			return NULL;
		}
		STAILQ_REMOVE_HEAD(&pool->todo, link);
		pthread_mutex_unlock(&pool->mu);

		/* After this the io belongs to the loop again. */
		aiol_store_complete_post(&pool->fq->base, io, file_exec(pool->fq->fs, io));
	}
}

void file_pool_destroy(struct file_pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->mu);
	pool->stop = true;
	pthread_cond_broadcast(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
	for (unsigned int i = 0; i < pool->nthreads; i++)
		pthread_join(pool->th[i], NULL);
	pthread_cond_destroy(&pool->cv);
	pthread_mutex_destroy(&pool->mu);
	free(pool);
}

int file_pool_create(struct file_queue *fq, unsigned int nthreads, struct file_pool **out)
{
	struct file_pool *pool;
	sigset_t all, old;
	int ret = 0;

	if (!nthreads || nthreads > 1024)
		return -EINVAL;
	pool = calloc(1, sizeof(*pool) + nthreads * sizeof(pthread_t));
	if (!pool)
		return -ENOMEM;
	pool->fq = fq;
	STAILQ_INIT(&pool->todo);
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->cv, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned int i = 0; i < nthreads; i++) {
		ret = -pthread_create(&pool->th[i], NULL, pool_main, pool);
		if (ret < 0) {
			aiol_err("creating an I/O thread: %s", strerror(-ret));
			break;
		}
		pool->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret < 0) {
		file_pool_destroy(pool);
		return ret;
	}
	*out = pool;
	return 0;
}

void file_pool_issue(struct file_pool *pool, struct aiol_store_io *io)
{
	pthread_mutex_lock(&pool->mu);
	STAILQ_INSERT_TAIL(&pool->todo, io, link);
	pthread_cond_signal(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
}

static int threads_init(struct file_queue *fq)
{
	return file_pool_create(fq, fq->fs->threads, &fq->pool);
}

static void threads_fini(struct file_queue *fq)
{
	file_pool_destroy(fq->pool);
	fq->pool = NULL;
}

static void threads_issue(struct file_queue *fq, struct aiol_store_io *io)
{
	file_pool_issue(fq->pool, io);
}

const struct file_backend file_backend_threads = {
	.name = "threads",
	.init = threads_init,
	.fini = threads_fini,
	.issue = threads_issue,
};
