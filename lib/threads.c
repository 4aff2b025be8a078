// SPDX-License-Identifier: MIT
/*
 * The threads backend, and the worker pool that the uring and aio backends
 * use as their helper for what has no asynchronous form (block status by
 * lseek, and for aio also fallocate, fdatasync and fadvise).
 *
 * Thread model: the loop thread hands requests to the pool through a FIFO
 * under a mutex and wakes one worker with a condition variable.  A worker
 * runs the request's primitive with a blocking call (eng_exec(), which only
 * reads the immutable dev and the request it was handed), stores the
 * result in the request and posts it back with aiol_loop_post(): the loop
 * side takes no lock.  Workers block every signal, so signals keep going
 * to the program's own threads.  Lock order: pool->mu only.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "aioloop/log.h"
#include "engine_internal.h"

struct eng_pool {
	struct aiol_queue *q;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct aiol_req *head, *tail;	/* guarded by mu */
	bool stop;			/* guarded by mu */
	unsigned int nthreads;
	pthread_t th[];
};

static void pool_done_work(struct aiol_work *w)
{
	struct eng_priv *p = aiol_container_of(w, struct eng_priv, work);

	eng_io_done(eng_req_of_priv(p), p->res);
}

static void *pool_main(void *arg)
{
	struct eng_pool *pool = arg;

	for (;;) {
		struct aiol_req *req;
		struct eng_priv *p;

		pthread_mutex_lock(&pool->mu);
		while (!pool->head && !pool->stop)
			pthread_cond_wait(&pool->cv, &pool->mu);
		req = pool->head;
		if (!req) {
			pthread_mutex_unlock(&pool->mu);
			return NULL;
		}
		p = eng_priv(req);
		pool->head = p->next;
		if (!pool->head)
			pool->tail = NULL;
		pthread_mutex_unlock(&pool->mu);

		p->next = NULL;
		p->res = eng_exec(pool->q->dev, req);
		p->work.fn = pool_done_work;
		/* After this the request belongs to the loop again. */
		aiol_loop_post(pool->q->loop, &p->work);
	}
}

void eng_pool_destroy(struct eng_pool *pool)
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

int eng_pool_create(struct aiol_queue *q, unsigned int nthreads, struct eng_pool **out)
{
	struct eng_pool *pool;
	sigset_t all, old;
	int ret = 0;

	if (!nthreads || nthreads > 1024)
		return -EINVAL;
	pool = calloc(1, sizeof(*pool) + nthreads * sizeof(pthread_t));
	if (!pool)
		return -ENOMEM;
	pool->q = q;
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
		eng_pool_destroy(pool);
		return ret;
	}
	*out = pool;
	return 0;
}

void eng_pool_issue(struct eng_pool *pool, struct aiol_req *req)
{
	struct eng_priv *p = eng_priv(req);

	p->next = NULL;
	pthread_mutex_lock(&pool->mu);
	if (pool->tail)
		eng_priv(pool->tail)->next = req;
	else
		pool->head = req;
	pool->tail = req;
	pthread_cond_signal(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
}

static int threads_init(struct aiol_queue *q)
{
	return eng_pool_create(q, q->dev->threads, &q->pool);
}

static void threads_fini(struct aiol_queue *q)
{
	eng_pool_destroy(q->pool);
	q->pool = NULL;
}

static void threads_issue(struct aiol_queue *q, struct aiol_req *req)
{
	eng_pool_issue(q->pool, req);
}

const struct eng_backend eng_backend_threads = {
	.name = "threads",
	.init = threads_init,
	.fini = threads_fini,
	.issue = threads_issue,
};
