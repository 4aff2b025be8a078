// SPDX-License-Identifier: MIT
/*
 * The encryption stage (aioloop/crypt.h): a store over a lower store that
 * keeps the data in dm-crypt's plain format.  It shows the engine an
 * alignment of one encryption sector, so that every READ and WRITE it is
 * given covers whole sectors (the engine read-modify-writes the rest), and
 * then:
 *   READ     is submitted to the lower store into the caller's buffer and
 *            decrypted in place once all of it has arrived;
 *   WRITE    is encrypted, CRYPT_CHUNK bytes at a time, into a bounce
 *            buffer (the loop's arena, else the queue's reserve, else a
 *            wait: bounce.h) that is then written; the caller's buffer is
 *            never changed;
 *   ZERO     writes encrypted zeroes the same way (a hole or a zeroed range
 *            would decrypt to garbage), so write-zeroes is never fast;
 *   DISCARD  passes down only with allow_discards, and then never serves
 *            write-zeroes (AIOL_STORE_DISCARD_NOZERO);
 *   EXTENTS  answers "all data" without asking;
 *   FLUSH, CACHE and FUA pass down;
 *   a resize takes the lower store's new size in whole sectors.
 * Short transfers and -EAGAIN of the lower store are resubmitted here, so
 * that only whole sectors are ever decrypted.
 *
 * Where the cipher runs (measured: docs/ARCHITECTURE.md, "Encryption"):
 * on the loop thread for requests under AIOL_CRYPT_POOL_MIN, where handing
 * the work over would cost more than the cipher; larger ones go to the
 * store's crypto threads (opts->threads, 0: none), each with a keyed
 * cipher of its own, which give the io back through the loop's inbox
 * (aiol_loop_post), so that the loop keeps submitting and completing other
 * I/O while a MiB is encrypted and several are encrypted at once.
 *
 * Thread model: the store (key, geometry) is shared and immutable but for
 * the pool, started once by the first queue (pool_mu) and stopped at
 * close; each store queue has its own lower store queue, keyed cipher,
 * bounce pool and io slots, used by its loop thread only.  An io handed to
 * the pool belongs to the pool thread until it posts it back.  Lock
 * order: pool->mu only (pool_mu is taken alone, on the control path).
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "aioloop/crypt.h"
#include "aioloop/log.h"
#include "aioloop/store.h"
#include "bounce.h"
#include "cipher.h"

/* Largest piece of a write encrypted into one bounce buffer. */
#define CRYPT_CHUNK (1u << 20)
/* How often the lower store's -EAGAIN is resubmitted before it is passed on. */
#define CRYPT_EAGAIN_MAX 1000

struct crypt_io;

/* The crypto threads of a store. */
struct crypt_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	STAILQ_HEAD(, crypt_io) jobs;
	bool stop;
	unsigned int n;
	struct crypt_pool_thread {
		struct crypt_pool *pool;
		struct cipher *c;
		pthread_t th;
	} t[];
};

struct crypt_store {
	struct aiol_store base;
	unsigned int threads; /* opts->threads */
	pthread_mutex_t pool_mu;
	bool pool_tried;
	struct crypt_pool *pool; /* NULL: everything on the loop threads */
	struct aiol_store *lower;
	struct aiol_crypt_spec spec;
	struct aiol_crypt_geom geom;
	struct aiol_crypt_key *key;
	uint64_t data_off; /* store offset of the data's first byte (sector 0) */
};

struct crypt_queue;

/* One upper io in flight, with the io it gives the lower store. */
struct crypt_io {
	struct aiol_store_io lo;
	struct aiol_store_io *up;
	struct crypt_queue *cq;
	struct bounce b;
	uint64_t pos; /* WRITE/ZERO: bytes of up written */
	uint64_t n;   /* WRITE/ZERO: bytes of the chunk in lo */
	unsigned int eagain;
	struct aiol_work work; /* waiting for a bounce; back from the pool */
	SLIST_ENTRY(crypt_io) free_link;
	/* A job of the crypto threads: encrypt the chunk in lo (WRITE, ZERO)
	 * or decrypt up (READ); job_res is its result. */
	STAILQ_ENTRY(crypt_io) job_link;
	int job_res;
};

struct crypt_queue {
	struct aiol_store_queue base;
	struct crypt_store *cs;
	struct aiol_store_queue *lq;
	struct cipher *c;
	struct bounce_pool bp;
	struct crypt_io *slots;
	SLIST_HEAD(, crypt_io) free;
};

static struct crypt_store *crypt_store_of(struct aiol_store *st)
{
	return aiol_container_of(st, struct crypt_store, base);
}

static struct crypt_queue *crypt_queue_of(struct aiol_store_queue *sq)
{
	return aiol_container_of(sq, struct crypt_queue, base);
}

static void crypt_lower_idle(struct aiol_store_queue *lq)
{
	struct crypt_queue *cq = lq->owner;

	aiol_store_queue_idle(&cq->base);
}

/* ---- the crypto threads ---- */

static int ci_crypt(struct crypt_io *ci, struct cipher *c);
static void job_back(struct aiol_work *w);

static void *pool_main(void *arg)
{
	struct crypt_pool_thread *t = arg;
	struct crypt_pool *pool = t->pool;

	for (;;) {
		struct crypt_io *ci;

		pthread_mutex_lock(&pool->mu);
		while (STAILQ_EMPTY(&pool->jobs) && !pool->stop)
			pthread_cond_wait(&pool->cv, &pool->mu);
		if (STAILQ_EMPTY(&pool->jobs)) {
			pthread_mutex_unlock(&pool->mu);
			return NULL;
		}
		ci = STAILQ_FIRST(&pool->jobs);
		STAILQ_REMOVE_HEAD(&pool->jobs, job_link);
		pthread_mutex_unlock(&pool->mu);
		ci->job_res = ci_crypt(ci, t->c);
		ci->work.fn = job_back;
		/* ci is the loop's from here on (and the loop waits for a post
		 * still in progress before it is destroyed). */
		aiol_loop_post(ci->cq->base.loop, &ci->work);
	}
}

static void pool_stop(struct crypt_pool *pool, unsigned int started)
{
	pthread_mutex_lock(&pool->mu);
	pool->stop = true;
	pthread_cond_broadcast(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
	for (unsigned int i = 0; i < started; i++)
		pthread_join(pool->t[i].th, NULL);
	for (unsigned int i = 0; i < pool->n; i++)
		cipher_destroy(pool->t[i].c);
	pthread_cond_destroy(&pool->cv);
	pthread_mutex_destroy(&pool->mu);
	free(pool);
}

/* Start the store's crypto threads, once; without them (none asked, or
 * they cannot start: warned) everything runs on the loop threads. */
static void pool_start(struct crypt_store *cs)
{
	struct crypt_pool *pool;
	unsigned int i;
	int ret;

	pthread_mutex_lock(&cs->pool_mu);
	if (cs->pool_tried || !cs->threads)
		goto out;
	cs->pool_tried = true;
	pool = calloc(1, sizeof(*pool) + cs->threads * sizeof(pool->t[0]));
	if (!pool)
		goto fail;
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->cv, NULL);
	STAILQ_INIT(&pool->jobs);
	pool->n = cs->threads;
	for (i = 0; i < pool->n; i++) {
		pool->t[i].pool = pool;
		if (cipher_create(&cs->spec, cs->key, &cs->geom, &pool->t[i].c) < 0) {
			pool_stop(pool, 0);
			goto fail;
		}
	}
	for (i = 0; i < pool->n; i++) {
		ret = pthread_create(&pool->t[i].th, NULL, pool_main, &pool->t[i]);
		if (ret) {
			errno = ret;
			aiol_warn("%s: cannot start a crypto thread: %m", cs->base.info.path);
			pool_stop(pool, i);
			goto fail;
		}
	}
	cs->pool = pool;
	goto out;
fail:
	aiol_warn("%s: no crypto threads: every request is encrypted on its loop thread",
		  cs->base.info.path);
out:
	pthread_mutex_unlock(&cs->pool_mu);
}

/* Hand ci to the crypto threads. */
static void pool_push(struct crypt_pool *pool, struct crypt_io *ci)
{
	pthread_mutex_lock(&pool->mu);
	STAILQ_INSERT_TAIL(&pool->jobs, ci, job_link);
	pthread_cond_signal(&pool->cv);
	pthread_mutex_unlock(&pool->mu);
}

static void crypt_queue_destroy(struct aiol_store_queue *sq);

static int crypt_queue_create(struct aiol_store *st, struct aiol_loop *loop, unsigned int depth,
			      struct aiol_store_queue **out)
{
	struct crypt_store *cs = crypt_store_of(st);
	struct crypt_queue *cq;
	int ret;

	*out = NULL;
	if (!depth)
		depth = 128;
	cq = calloc(1, sizeof(*cq));
	if (!cq)
		return -ENOMEM;
	aiol_store_queue_init(&cq->base, st, loop, depth);
	cq->cs = cs;
	SLIST_INIT(&cq->free);
	cq->slots = calloc(depth, sizeof(*cq->slots));
	if (!cq->slots) {
		ret = -ENOMEM;
		goto err;
	}
	for (unsigned int i = depth; i-- > 0;) {
		cq->slots[i].cq = cq;
		SLIST_INSERT_HEAD(&cq->free, &cq->slots[i], free_link);
	}
	ret = bounce_pool_init(&cq->bp, loop, CRYPT_CHUNK);
	if (ret < 0)
		goto err;
	ret = cipher_create(&cs->spec, cs->key, &cs->geom, &cq->c);
	if (ret < 0)
		goto err;
	ret = cs->lower->ops->queue_create(cs->lower, loop, depth, &cq->lq);
	if (ret < 0)
		goto err;
	cq->lq->idle = crypt_lower_idle;
	cq->lq->owner = cq;
	pool_start(cs);
	*out = &cq->base;
	return 0;
err:
	crypt_queue_destroy(&cq->base);
	return ret;
}

static void crypt_queue_destroy(struct aiol_store_queue *sq)
{
	struct crypt_queue *cq = crypt_queue_of(sq);

	if (cq->lq)
		cq->cs->lower->ops->queue_destroy(cq->lq);
	cipher_destroy(cq->c);
	bounce_pool_fini(&cq->bp);
	free(cq->slots);
	free(cq);
}

static bool crypt_busy(const struct aiol_store_queue *sq)
{
	const struct crypt_queue *cq = aiol_container_of(sq, struct crypt_queue, base);
	const struct aiol_store_ops *lops = cq->cs->lower->ops;

	return lops->busy && lops->busy(cq->lq);
}

/* ---- the data path ---- */

static void lo_submit(struct crypt_io *ci)
{
	struct crypt_queue *cq = ci->cq;

	cq->cs->lower->ops->submit(cq->lq, &ci->lo);
}

/* Complete the upper io with res and give the slot back. */
static void ci_finish(struct crypt_io *ci, int res)
{
	struct crypt_queue *cq = ci->cq;
	struct aiol_store_io *up = ci->up;

	bounce_put(&cq->bp, &ci->b);
	ci->up = NULL;
	SLIST_INSERT_HEAD(&cq->free, ci, free_link);
	aiol_store_complete(up, res);
}

static void write_chunk(struct crypt_io *ci);

static void bounce_ready(struct aiol_work *w)
{
	write_chunk(aiol_container_of(w, struct crypt_io, work));
}

/* Encrypt the next chunk of a WRITE or ZERO into the bounce and write it. */
static void write_chunk(struct crypt_io *ci)
{
	struct crypt_queue *cq = ci->cq;
	struct aiol_store_io *up = ci->up;
	uint64_t n = up->len - ci->pos;

	if (n > CRYPT_CHUNK)
		n = CRYPT_CHUNK;
	if (!ci->b.buf) {
		size_t blen = up->len < CRYPT_CHUNK ? up->len : CRYPT_CHUNK;

		ci->work.fn = bounce_ready;
		if (!bounce_get(&cq->bp, &ci->b, blen, &ci->work))
			return; /* bounce_ready() runs when one is given back */
	}
	ci->n = n;
	ci->eagain = 0;
	ci->lo.op = AIOL_SIO_WRITE;
	ci->lo.flags = up->op == AIOL_SIO_WRITE ? up->flags & AIOL_F_FUA : 0;
	ci->lo.off = up->off + ci->pos;
	ci->lo.len = n;
	ci->lo.buf = ci->b.buf;
	if (cq->cs->pool && n >= AIOL_CRYPT_POOL_MIN) {
		pool_push(cq->cs->pool, ci);
		return; /* job_back() goes on */
	}
	if (ci_crypt(ci, cq->c) < 0) {
		ci_finish(ci, -EIO);
		return;
	}
	lo_submit(ci);
}

/* The cipher's part of ci with c (loop or crypto thread): encrypt the
 * chunk set up in lo (WRITE, ZERO), or decrypt all of up (READ).  Returns
 * 0 or -EIO. */
static int ci_crypt(struct crypt_io *ci, struct cipher *c)
{
	struct aiol_store_io *up = ci->up;
	uint64_t data_off = ci->cq->cs->data_off;

	if (up->op == AIOL_SIO_READ)
		return cipher_decrypt(c, up->off - data_off, up->buf, up->len);
	return cipher_encrypt(c, ci->lo.off - data_off,
			      up->op == AIOL_SIO_WRITE ? (const uint8_t *)up->buf + ci->pos : NULL,
			      ci->lo.buf, ci->lo.len);
}

/* A crypto thread has done ci's job (loop thread). */
static void job_back(struct aiol_work *w)
{
	struct crypt_io *ci = aiol_container_of(w, struct crypt_io, work);

	if (ci->job_res < 0) {
		ci_finish(ci, ci->job_res);
		return;
	}
	if (ci->up->op == AIOL_SIO_READ) {
		ci_finish(ci, (int)ci->up->len);
		return;
	}
	lo_submit(ci);
}

/*
 * The lower store completed ci->lo.  READ and WRITE: -EAGAIN and the rest
 * of a short transfer are resubmitted, a transfer of nothing is -EIO; a
 * READ is then decrypted, a WRITE goes on with its next chunk.
 */
static void lo_done(struct aiol_store_io *lo, int res)
{
	struct crypt_io *ci = aiol_container_of(lo, struct crypt_io, lo);
	struct crypt_queue *cq = ci->cq;
	struct aiol_store_io *up = ci->up;
	bool rw = lo->op == AIOL_SIO_READ || lo->op == AIOL_SIO_WRITE;

	if (rw && (res == -EAGAIN || res == -EINTR) && ci->eagain < CRYPT_EAGAIN_MAX) {
		ci->eagain++;
		lo_submit(ci);
		return;
	}
	if (!rw || res < 0) {
		if (lo->op == AIOL_SIO_EXTENTS)
			up->ext_count = lo->ext_count;
		ci_finish(ci, res);
		return;
	}
	if (res == 0 && lo->len) {
		ci_finish(ci, -EIO);
		return;
	}
	if ((uint64_t)res < lo->len) {
		lo->off += (uint64_t)res;
		lo->len -= (uint64_t)res;
		lo->buf = (uint8_t *)lo->buf + res;
		ci->eagain = 0;
		lo_submit(ci);
		return;
	}
	if (lo->op == AIOL_SIO_READ) {
		if (cq->cs->pool && up->len >= AIOL_CRYPT_POOL_MIN) {
			pool_push(cq->cs->pool, ci);
			return; /* job_back() completes it */
		}
		ci_finish(ci, ci_crypt(ci, cq->c) < 0 ? -EIO : (int)up->len);
		return;
	}
	ci->pos += ci->n;
	if (ci->pos < up->len) {
		write_chunk(ci);
		return;
	}
	ci_finish(ci, up->op == AIOL_SIO_WRITE ? (int)up->len : 0);
}

static void crypt_submit(struct aiol_store_queue *sq, struct aiol_store_io *up)
{
	struct crypt_queue *cq = crypt_queue_of(sq);
	struct crypt_store *cs = cq->cs;
	struct crypt_io *ci;

	assert(up->op == AIOL_SIO_FLUSH || up->off >= cs->data_off);
	if (up->op == AIOL_SIO_EXTENTS) {
		/* Every byte is data: a hole decrypts to garbage. */
		up->ext[0].len = up->len;
		up->ext[0].flags = 0;
		up->ext_count = 1;
		aiol_store_complete_later(sq, up, 0);
		return;
	}
	if (up->op == AIOL_SIO_DISCARD && !(aiol_store_caps(&cs->base) & AIOL_STORE_DISCARD)) {
		aiol_store_complete_later(sq, up, -EOPNOTSUPP);
		return;
	}
	ci = SLIST_FIRST(&cq->free);
	assert(ci); /* at most depth ios in flight */
	SLIST_REMOVE_HEAD(&cq->free, free_link);
	ci->up = up;
	ci->pos = 0;
	ci->n = 0;
	ci->eagain = 0;
	ci->lo = (struct aiol_store_io){
	    .op = up->op,
	    .flags = up->flags,
	    .off = up->off,
	    .len = up->len,
	    .buf = up->buf,
	    .ext = up->ext,
	    .ext_max = up->ext_max,
	    .done = lo_done,
	};
	switch (up->op) {
	case AIOL_SIO_WRITE:
	case AIOL_SIO_ZERO:
		assert(!((up->off - cs->data_off) & (cs->geom.sector_size - 1)));
		assert(!(up->len & (cs->geom.sector_size - 1)));
		write_chunk(ci);
		return;
	case AIOL_SIO_READ:
		assert(!((up->off - cs->data_off) & (cs->geom.sector_size - 1)));
		assert(!(up->len & (cs->geom.sector_size - 1)));
		break;
	default:
		break;
	}
	lo_submit(ci);
}

/* ---- the store ---- */

static int crypt_sync(struct aiol_store *st)
{
	struct crypt_store *cs = crypt_store_of(st);

	return cs->lower->ops->sync(cs->lower);
}

/* Online resize: the lower store's new size, in whole encryption
 * sectors (control path; -EOPNOTSUPP where the lower store cannot). */
static int crypt_refresh_size(struct aiol_store *st, uint64_t sizelimit, uint64_t *size_out)
{
	struct crypt_store *cs = crypt_store_of(st);
	struct aiol_store *lower = cs->lower;
	uint64_t size;
	int ret;

	if (!lower->ops->refresh_size) {
		aiol_err("%s: the %s store cannot change its size", lower->info.path,
			 lower->ops->name);
		return -EOPNOTSUPP;
	}
	ret = lower->ops->refresh_size(lower, sizelimit, &size);
	if (ret < 0)
		return ret;
	size &= ~((uint64_t)cs->geom.sector_size - 1);
	if (size == 0) {
		aiol_err("%s: no whole %u-byte encryption sector is left visible", lower->info.path,
			 cs->geom.sector_size);
		return -ENOSPC;
	}
	__atomic_store_n(&st->info.backing_size,
			 __atomic_load_n(&lower->info.backing_size, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
	__atomic_store_n(&st->info.size, size, __ATOMIC_RELEASE);
	*size_out = size;
	return 0;
}

static void crypt_close(struct aiol_store *st)
{
	struct crypt_store *cs = crypt_store_of(st);

	if (cs->pool)
		pool_stop(cs->pool, cs->pool->n);
	pthread_mutex_destroy(&cs->pool_mu);
	cs->lower->ops->close(cs->lower);
	aiol_crypt_key_free(cs->key);
	free(cs);
}

static const struct aiol_store_ops crypt_store_ops = {
    .name = "crypt",
    .queue_create = crypt_queue_create,
    .queue_destroy = crypt_queue_destroy,
    .submit = crypt_submit,
    .busy = crypt_busy,
    .sync = crypt_sync,
    .refresh_size = crypt_refresh_size,
    .close = crypt_close,
};

static unsigned int umax(unsigned int a, unsigned int b)
{
	return a > b ? a : b;
}

int aiol_crypt_store_open(struct aiol_store *lower, const struct aiol_crypt_opts *opts,
			  struct aiol_store **out)
{
	const struct aiol_dev_info *li = &lower->info;
	unsigned int ss = opts->geom.sector_size;
	uint32_t lcaps = aiol_store_caps(lower);
	struct crypt_store *cs;
	struct cipher *probe;
	int ret;

	*out = NULL;
	if (aiol_crypt_geom_check(&opts->geom) < 0) {
		aiol_err("%s: an encryption sector of %u bytes with an IV offset of %llu "
			 "sectors: the sector must be 512 or 4096 bytes and the offset a "
			 "multiple of it",
			 li->path, ss, (unsigned long long)opts->geom.iv_offset);
		ret = -EINVAL;
		goto err_lower;
	}
	if (!aiol_crypt_key_len_ok(&opts->spec, aiol_crypt_key_len(opts->key))) {
		aiol_err("%s: a key of %zu bytes; %s takes %s", li->path,
			 aiol_crypt_key_len(opts->key), opts->spec.name,
			 aiol_crypt_key_lens(&opts->spec));
		ret = -EINVAL;
		goto err_lower;
	}
	/* Key the cipher once here, so that a refused key fails the open. */
	ret = cipher_create(&opts->spec, opts->key, &opts->geom, &probe);
	if (ret < 0)
		goto err_lower;
	cipher_destroy(probe);
	if (li->size < ss) {
		aiol_err("%s: %llu bytes hold no %u-byte encryption sector", li->path,
			 (unsigned long long)li->size, ss);
		ret = -EINVAL;
		goto err_lower;
	}
	cs = calloc(1, sizeof(*cs));
	if (!cs) {
		ret = -ENOMEM;
		goto err_lower;
	}
	ret = aiol_crypt_key_new(aiol_crypt_key_bytes(opts->key), aiol_crypt_key_len(opts->key),
				 &cs->key);
	if (ret < 0) {
		free(cs);
		goto err_lower;
	}
	cs->lower = lower;
	cs->threads = opts->threads;
	pthread_mutex_init(&cs->pool_mu, NULL);
	cs->spec = opts->spec;
	cs->geom = opts->geom;
	cs->data_off = li->offset;
	cs->base.ops = &crypt_store_ops;
	cs->base.info = *li;
	cs->base.info.size = li->size & ~((uint64_t)ss - 1);
	if (cs->base.info.size != li->size)
		aiol_warn("%s: %llu bytes are not whole %u-byte encryption sectors: %llu shown",
			  li->path, (unsigned long long)li->size, ss,
			  (unsigned long long)cs->base.info.size);
	cs->base.info.dio_align = umax(li->dio_align, ss);
	cs->base.info.block_size = umax(li->block_size, ss);
	cs->base.info.caps = 0;
	cs->base.caps = (lcaps & (AIOL_STORE_FUA | AIOL_STORE_FLUSH | AIOL_STORE_CACHE |
				  AIOL_STORE_ROTATIONAL)) |
			AIOL_STORE_ZERO | AIOL_STORE_EXTENTS;
	if (opts->allow_discards && (lcaps & AIOL_STORE_DISCARD))
		cs->base.caps |= AIOL_STORE_DISCARD | AIOL_STORE_DISCARD_NOZERO;
	cs->base.discard_align = umax(lower->discard_align ? lower->discard_align : 1, ss);
	cs->base.max_depth = lower->max_depth;
	aiol_debug("%s: %s, %u-byte sectors%s, IV offset %llu, discards %s", li->path,
		   opts->spec.name, ss, opts->geom.iv_large_sectors ? " (large IVs)" : "",
		   (unsigned long long)opts->geom.iv_offset,
		   cs->base.caps & AIOL_STORE_DISCARD ? "passed down" : "refused");
	*out = &cs->base;
	return 0;

err_lower:
	lower->ops->close(lower);
	return ret;
}
