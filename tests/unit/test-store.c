// SPDX-License-Identifier: MIT
/*
 * Unit tests of the store seam (aioloop/store.h) with an in-memory store
 * written against the public header only, as a cluster store or an
 * encryption stage would be: a store that needs 4096-byte alignment (an
 * encryption sector) receives only aligned primitives, whatever the
 * requests, and the data matches a shadow copy; completions delivered
 * from the store's own thread through the loop's inbox; short transfers;
 * overlapping unaligned writes landing in submission order; the window
 * offset added to every primitive; capabilities the store lacks refused or
 * done by writing; a ZERO the store turns out not to have, cleared and
 * replaced by writing zeroes; a registered-buffer request (AIOL_F_FIXED_BUF)
 * reaching the store with its index, or refused by a store that cannot
 * take it; and a size refreshed by the store, or refused by one that
 * cannot change it; done() called inside the store's completion while
 * other requests are in flight, at the next iteration for the last; and
 * the encryption stage over such a store.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "aioloop/crypt.h"
#include "aioloop/engine.h"
#include "aioloop/loop.h"
#include "aioloop/store.h"

#define MiB (1024u * 1024u)
#define SIZE (8 * MiB)
#define WINDOW 8192u

struct mem_store {
	struct aiol_store base;
	uint8_t *data;	   /* the whole store: WINDOW + SIZE bytes */
	bool foreign;	   /* complete from the queue's own thread */
	bool short_io;	   /* move at most half of a multi-block READ/WRITE */
	bool zero_fails;   /* ZERO answers -EOPNOTSUPP */
	bool manual;	   /* park every io: the test completes it, as a CQE would */
	uint64_t new_size; /* what mem_refresh_size finds */
	uint64_t limit;	   /* the size limit in force, 0: none */
	/* the last AIOL_F_FIXED_BUF READ/WRITE (loop-thread stores only) */
	unsigned int fixed_ios;
	uint16_t fixed_index;
	uintptr_t fixed_off;
	atomic_uint misaligned;
	atomic_uint below_window;
	atomic_uint ops[AIOL_SIO_CACHE + 1];
	atomic_uint closed;
};

struct mem_queue {
	struct aiol_store_queue base;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	STAILQ_HEAD(, aiol_store_io) todo;
	bool stop;
	unsigned int parked; /* manual: ios submitted, in todo */
};

static struct mem_queue *last_queue; /* the newest queue made */

static struct mem_store *ms_of(struct aiol_store *st)
{
	return aiol_container_of(st, struct mem_store, base);
}

/* Run io on the memory; returns its result. */
static int mem_exec(struct mem_store *ms, struct aiol_store_io *io)
{
	uint64_t a = ms->base.info.dio_align, n = io->len;

	atomic_fetch_add(&ms->ops[io->op], 1);
	if (io->op != AIOL_SIO_FLUSH && io->off < WINDOW)
		atomic_fetch_add(&ms->below_window, 1);
	switch (io->op) {
	case AIOL_SIO_READ:
	case AIOL_SIO_WRITE:
		if ((io->off | io->len) % a || (uintptr_t)io->buf % ms->base.info.dio_mem_align)
			atomic_fetch_add(&ms->misaligned, 1);
		if (ms->short_io && n > a)
			n = (n / a / 2) * a;
		if (io->flags & AIOL_F_FIXED_BUF) {
			/* Not memory of ours: only where it points is seen. */
			ms->fixed_ios++;
			ms->fixed_index = io->buf_index;
			ms->fixed_off = (uintptr_t)io->buf;
			return (int)n;
		}
		if (io->op == AIOL_SIO_READ)
			memcpy(io->buf, ms->data + io->off, n);
		else
			memcpy(ms->data + io->off, io->buf, n);
		return (int)n;
	case AIOL_SIO_ZERO:
		if (ms->zero_fails)
			return -EOPNOTSUPP;
		memset(ms->data + io->off, 0, io->len);
		return 0;
	case AIOL_SIO_DISCARD:
		memset(ms->data + io->off, 0, io->len);
		return 0;
	case AIOL_SIO_EXTENTS:
		io->ext[0].len = io->len;
		io->ext[0].flags = 0;
		io->ext_count = 1;
		return 0;
	default:
		return 0;
	}
}

static void *mem_thread(void *arg)
{
	struct mem_queue *mq = arg;
	struct mem_store *ms = ms_of(mq->base.store);

	pthread_mutex_lock(&mq->mu);
	for (;;) {
		struct aiol_store_io *io;

		while (STAILQ_EMPTY(&mq->todo) && !mq->stop)
			pthread_cond_wait(&mq->cv, &mq->mu);
		io = STAILQ_FIRST(&mq->todo);
		if (!io)
			break;
		STAILQ_REMOVE_HEAD(&mq->todo, link);
		pthread_mutex_unlock(&mq->mu);
		aiol_store_complete_post(&mq->base, io, mem_exec(ms, io));
		pthread_mutex_lock(&mq->mu);
	}
	pthread_mutex_unlock(&mq->mu);
	return NULL;
}

static int mem_queue_create(struct aiol_store *st, struct aiol_loop *loop, unsigned int depth,
			    struct aiol_store_queue **out)
{
	struct mem_queue *mq = calloc(1, sizeof(*mq));

	if (!mq)
		return -ENOMEM;
	aiol_store_queue_init(&mq->base, st, loop, depth);
	pthread_mutex_init(&mq->mu, NULL);
	pthread_cond_init(&mq->cv, NULL);
	STAILQ_INIT(&mq->todo);
	last_queue = mq;
	if (ms_of(st)->foreign && pthread_create(&mq->th, NULL, mem_thread, mq)) {
		free(mq);
		return -EAGAIN;
	}
	*out = &mq->base;
	return 0;
}

static void mem_queue_destroy(struct aiol_store_queue *sq)
{
	struct mem_queue *mq = aiol_container_of(sq, struct mem_queue, base);

	if (ms_of(sq->store)->foreign) {
		pthread_mutex_lock(&mq->mu);
		mq->stop = true;
		pthread_cond_signal(&mq->cv);
		pthread_mutex_unlock(&mq->mu);
		pthread_join(mq->th, NULL);
	}
	pthread_cond_destroy(&mq->cv);
	pthread_mutex_destroy(&mq->mu);
	free(mq);
}

static void mem_submit(struct aiol_store_queue *sq, struct aiol_store_io *io)
{
	struct mem_queue *mq = aiol_container_of(sq, struct mem_queue, base);
	struct mem_store *ms = ms_of(sq->store);

	if (ms->manual) {
		STAILQ_INSERT_TAIL(&mq->todo, io, link);
		mq->parked++;
		return;
	}
	if (!ms->foreign) {
		aiol_store_complete_later(sq, io, mem_exec(ms, io));
		return;
	}
	pthread_mutex_lock(&mq->mu);
	STAILQ_INSERT_TAIL(&mq->todo, io, link);
	pthread_cond_signal(&mq->cv);
	pthread_mutex_unlock(&mq->mu);
}

static int mem_sync(struct aiol_store *st)
{
	(void)st;
	return 0;
}

static void mem_close(struct aiol_store *st)
{
	atomic_fetch_add(&ms_of(st)->closed, 1);
}

static int mem_refresh_size(struct aiol_store *st, uint64_t sizelimit, uint64_t *size)
{
	struct mem_store *ms = ms_of(st);
	uint64_t n = ms->new_size, limit = sizelimit ? sizelimit : ms->limit;

	if (limit && limit < n)
		n = limit;
	if (!n)
		return -ENOSPC;
	ms->limit = limit;
	__atomic_store_n(&st->info.backing_size, WINDOW + ms->new_size, __ATOMIC_RELAXED);
	__atomic_store_n(&st->info.size, n, __ATOMIC_RELEASE);
	*size = n;
	return 0;
}

static const struct aiol_store_ops mem_ops = {
    .name = "memory",
    .queue_create = mem_queue_create,
    .queue_destroy = mem_queue_destroy,
    .submit = mem_submit,
    .sync = mem_sync,
    .close = mem_close,
};

/* The same store, able to change its size. */
static const struct aiol_store_ops mem_ops_resizable = {
    .name = "memory",
    .queue_create = mem_queue_create,
    .queue_destroy = mem_queue_destroy,
    .submit = mem_submit,
    .sync = mem_sync,
    .refresh_size = mem_refresh_size,
    .close = mem_close,
};

struct fix {
	struct mem_store ms;
	bool encrypted; /* the dev is the encryption stage over ms */
	uint8_t *shadow;
	struct aiol_loop *loop;
	struct aiol_dev *dev;
	struct aiol_queue *q;
};

static void fix_open(struct fix *f, unsigned int align, uint32_t caps, bool foreign)
{
	memset(f, 0, sizeof(*f));
	f->ms.data = calloc(1, WINDOW + SIZE);
	f->shadow = calloc(1, SIZE);
	assert_non_null(f->ms.data);
	assert_non_null(f->shadow);
	f->ms.foreign = foreign;
	f->ms.base.ops = &mem_ops;
	f->ms.base.info.path = "mem";
	f->ms.base.info.size = SIZE;
	f->ms.base.info.offset = WINDOW;
	f->ms.base.info.backing_size = WINDOW + SIZE;
	f->ms.base.info.block_size = 512;
	f->ms.base.info.dio_align = align;
	f->ms.base.info.dio_mem_align = align > 1 ? 512 : 1;
	f->ms.base.caps = caps;
	f->ms.base.discard_align = 1;
	assert_int_equal(aiol_dev_open_store(&f->ms.base, &f->dev), 0);
	assert_int_equal(aiol_loop_create(NULL, &f->loop), 0);
	assert_int_equal(aiol_queue_create(f->dev, f->loop, NULL, &f->q), 0);
}

static void fix_close(struct fix *f)
{
	aiol_queue_destroy(f->q);
	aiol_loop_destroy(f->loop);
	aiol_dev_close(f->dev);
	assert_int_equal(atomic_load(&f->ms.closed), 1);
	free(f->ms.data);
	free(f->shadow);
}

struct slot {
	struct aiol_req req;
	bool busy;
	int res;
	uint8_t buf[70000];
};

static void slot_done(struct aiol_req *req, int res)
{
	struct slot *s = aiol_container_of(req, struct slot, req);

	s->res = res;
	s->busy = false;
}

/* One request, waited for; returns its result. */
static int run1(struct fix *f, uint8_t op, uint32_t flags, uint64_t off, uint64_t len, void *buf)
{
	static struct slot s;

	memset(&s.req, 0, sizeof(s.req));
	s.req.op = op;
	s.req.flags = flags;
	s.req.off = off;
	s.req.len = len;
	s.req.buf = buf;
	s.req.done = slot_done;
	s.busy = true;
	assert_int_equal(aiol_submit(f->q, &s.req), 0);
	while (s.busy)
		assert_true(aiol_loop_run_once(f->loop, true) >= 0);
	return s.res;
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

#define NSLOT 16

/* Random unaligned reads, writes and write-zeroes, NSLOT in flight, each
 * slot in its own 64 KiB region (in-flight writes never overlap), through
 * a store that needs 4096-byte primitives. */
static void random_io(struct fix *f, uint64_t seed)
{
	static struct slot s[NSLOT];
	uint64_t x = seed;
	int done = 0;

	while (done < 3000) {
		for (int i = 0; i < NSLOT; i++) {
			uint64_t region = (uint64_t)(rnd(&x) % (SIZE / 65536 / NSLOT)) * NSLOT + i;
			uint64_t off, len;
			int kind;

			if (s[i].busy)
				continue;
			assert_int_equal(s[i].res, 0);
			off = region * 65536 + rnd(&x) % 60000;
			len = 1 + rnd(&x) % (region * 65536 + 65536 - off);
			kind = (int)(rnd(&x) % 4);
			memset(&s[i].req, 0, sizeof(s[i].req));
			s[i].req.off = off;
			s[i].req.len = len;
			s[i].req.done = slot_done;
			/* misaligned buffers too */
			s[i].req.buf = s[i].buf + (rnd(&x) % 2 ? 0 : 1 + rnd(&x) % 511);
			if (kind == 0) {
				s[i].req.op = AIOL_OP_READ;
			} else if (kind == 3) {
				s[i].req.op = AIOL_OP_WRITE_ZEROES;
				s[i].req.buf = NULL;
				memset(f->shadow + off, 0, len);
			} else {
				s[i].req.op = AIOL_OP_WRITE;
				for (uint64_t j = 0; j < len; j++)
					((uint8_t *)s[i].req.buf)[j] = (uint8_t)rnd(&x);
				memcpy(f->shadow + off, s[i].req.buf, len);
			}
			s[i].busy = true;
			assert_int_equal(aiol_submit(f->q, &s[i].req), 0);
		}
		assert_true(aiol_loop_run_once(f->loop, true) >= 0);
		for (int i = 0; i < NSLOT; i++) {
			if (s[i].busy || !s[i].req.done)
				continue;
			assert_int_equal(s[i].res, 0);
			if (s[i].req.op == AIOL_OP_READ)
				assert_memory_equal(s[i].req.buf, f->shadow + s[i].req.off,
						    s[i].req.len);
			s[i].req.done = NULL;
			done++;
		}
	}
	while (aiol_queue_inflight(f->q))
		assert_true(aiol_loop_run_once(f->loop, true) >= 0);
	for (int i = 0; i < NSLOT; i++) {
		s[i].busy = false;
		s[i].res = 0;
	}
	if (f->encrypted) {
		/* Ciphertext below, the plaintext through the stage. */
		uint8_t *back = malloc(SIZE);

		assert_non_null(back);
		assert_memory_not_equal(f->ms.data + WINDOW, f->shadow, SIZE);
		assert_int_equal(run1(f, AIOL_OP_READ, 0, 0, SIZE, back), 0);
		assert_memory_equal(back, f->shadow, SIZE);
		free(back);
	} else {
		assert_memory_equal(f->ms.data + WINDOW, f->shadow, SIZE);
	}
	assert_int_equal(atomic_load(&f->ms.misaligned), 0);
	assert_int_equal(atomic_load(&f->ms.below_window), 0);
}

static void test_aligned_store_loop_thread(void **state)
{
	struct fix f;

	(void)state;
	fix_open(&f, 4096, AIOL_STORE_FLUSH | AIOL_STORE_FUA, false);
	random_io(&f, 1);
	/* No ZERO or DISCARD: write-zeroes were written, never asked of the store. */
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_ZERO]), 0);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_DISCARD]), 0);
	fix_close(&f);
}

static void test_foreign_thread_completions(void **state)
{
	struct fix f;

	(void)state;
	fix_open(&f, 4096, AIOL_STORE_FLUSH | AIOL_STORE_FUA, true);
	random_io(&f, 2);
	fix_close(&f);
}

static void test_short_transfers(void **state)
{
	struct fix f;

	(void)state;
	fix_open(&f, 4096, AIOL_STORE_FLUSH | AIOL_STORE_FUA, true);
	f.ms.short_io = true;
	random_io(&f, 3);
	fix_close(&f);
}

/* Unaligned writes into the same block, all in flight at once, land in
 * submission order. */
static void test_overlapping_in_order(void **state)
{
	static struct slot s[8];
	uint8_t want[4096];
	struct fix f;

	(void)state;
	fix_open(&f, 4096, AIOL_STORE_FLUSH | AIOL_STORE_FUA, true);
	for (int i = 0; i < 8; i++) {
		memset(&s[i].req, 0, sizeof(s[i].req));
		s[i].req.op = AIOL_OP_WRITE;
		s[i].req.off = 100 + (uint64_t)i * 10;
		s[i].req.len = 1000;
		s[i].req.buf = s[i].buf;
		s[i].req.done = slot_done;
		memset(s[i].buf, 'a' + i, 1000);
		s[i].busy = true;
		assert_int_equal(aiol_submit(f.q, &s[i].req), 0);
	}
	while (aiol_queue_inflight(f.q))
		assert_true(aiol_loop_run_once(f.loop, true) >= 0);
	memset(want, 0, sizeof(want));
	for (int i = 0; i < 8; i++) {
		assert_int_equal(s[i].res, 0);
		memset(want + 100 + i * 10, 'a' + i, 1000);
	}
	assert_memory_equal(f.ms.data + WINDOW, want, sizeof(want));
	fix_close(&f);
}

/* What the store lacks is refused (or written), what it has is used; the
 * dev's public caps follow the store's. */
static void test_caps(void **state)
{
	uint8_t buf[4096];
	struct fix f;
	uint32_t caps;

	(void)state;
	fix_open(&f, 1, AIOL_STORE_FLUSH, false);
	caps = aiol_dev_info(f.dev)->caps;
	assert_int_equal(caps, AIOL_CAP_FLUSH);
	assert_int_equal(run1(&f, AIOL_OP_DISCARD, 0, 0, 4096, NULL), -EOPNOTSUPP);
	assert_int_equal(run1(&f, AIOL_OP_WRITE_ZEROES, AIOL_F_FAST_ONLY, 0, 4096, NULL),
			 -EOPNOTSUPP);
	memset(buf, 7, sizeof(buf));
	assert_int_equal(run1(&f, AIOL_OP_WRITE, 0, 0, sizeof(buf), buf), 0);
	assert_int_equal(run1(&f, AIOL_OP_WRITE_ZEROES, 0, 0, 4096, NULL), 0);
	assert_int_equal(f.ms.data[WINDOW], 0);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_WRITE]), 2);
	assert_int_equal(run1(&f, AIOL_OP_CACHE, 0, 0, 4096, NULL), 0);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_CACHE]), 0); /* no cache: not asked */
	fix_close(&f);

	fix_open(&f, 1,
		 AIOL_STORE_FLUSH | AIOL_STORE_FUA | AIOL_STORE_DISCARD | AIOL_STORE_ZERO |
		     AIOL_STORE_FAST_ZERO | AIOL_STORE_EXTENTS | AIOL_STORE_CACHE,
		 false);
	caps = aiol_dev_info(f.dev)->caps;
	assert_int_equal(caps, AIOL_CAP_FLUSH | AIOL_CAP_FUA | AIOL_CAP_DISCARD |
				   AIOL_CAP_WRITE_ZEROES | AIOL_CAP_FAST_ZERO |
				   AIOL_CAP_BLOCK_STATUS);
	assert_int_equal(run1(&f, AIOL_OP_DISCARD, 0, 4096, 4096, NULL), 0);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_DISCARD]), 1);
	assert_int_equal(run1(&f, AIOL_OP_WRITE_ZEROES, AIOL_F_NO_UNMAP, 0, 4096, NULL), 0);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_ZERO]), 1);
	assert_int_equal(run1(&f, AIOL_OP_CACHE, 0, 0, 4096, NULL), 0);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_CACHE]), 1);
	assert_int_equal(run1(&f, AIOL_OP_FLUSH, 0, 0, 0, NULL), 0);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_FLUSH]), 1);
	/* A discard with FUA is followed by a flush. */
	assert_int_equal(run1(&f, AIOL_OP_DISCARD, AIOL_F_FUA, 0, 4096, NULL), 0);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_FLUSH]), 2);
	fix_close(&f);
}

static void test_extents(void **state)
{
	static struct slot s;
	struct aiol_extent ext[4];
	struct fix f;

	(void)state;
	fix_open(&f, 1, AIOL_STORE_EXTENTS, false);
	memset(&s.req, 0, sizeof(s.req));
	s.req.op = AIOL_OP_BLOCK_STATUS;
	s.req.off = 4096;
	s.req.len = 65536;
	s.req.ext = ext;
	s.req.ext_max = 4;
	s.req.done = slot_done;
	s.busy = true;
	assert_int_equal(aiol_submit(f.q, &s.req), 0);
	while (s.busy)
		assert_true(aiol_loop_run_once(f.loop, true) >= 0);
	assert_int_equal(s.res, 0);
	assert_int_equal(s.req.ext_count, 1);
	assert_int_equal(ext[0].len, 65536);
	assert_int_equal(ext[0].flags, 0);
	fix_close(&f);

	fix_open(&f, 1, 0, false); /* no EXTENTS */
	s.busy = true;
	assert_int_equal(aiol_submit(f.q, &s.req), 0);
	while (s.busy)
		assert_true(aiol_loop_run_once(f.loop, true) >= 0);
	assert_int_equal(s.res, -EOPNOTSUPP);
	fix_close(&f);
}

/* A ZERO the store cannot do after all: cleared on the store and the dev,
 * the zeroes are written instead, and the store is not asked again. */
static void test_zero_cleared(void **state)
{
	uint8_t buf[8192];
	struct fix f;

	(void)state;
	fix_open(&f, 1, AIOL_STORE_FLUSH | AIOL_STORE_ZERO | AIOL_STORE_FAST_ZERO, false);
	f.ms.zero_fails = true;
	memset(buf, 9, sizeof(buf));
	assert_int_equal(run1(&f, AIOL_OP_WRITE, 0, 0, sizeof(buf), buf), 0);
	assert_true(aiol_dev_info(f.dev)->caps & AIOL_CAP_WRITE_ZEROES);
	assert_int_equal(run1(&f, AIOL_OP_WRITE_ZEROES, 0, 100, 5000, NULL), 0);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_ZERO]), 1);
	assert_false(aiol_store_caps(&f.ms.base) & AIOL_STORE_ZERO);
	assert_false(aiol_dev_info(f.dev)->caps & AIOL_CAP_WRITE_ZEROES);
	assert_int_equal(f.ms.data[WINDOW + 99], 9);
	for (int i = 100; i < 5100; i++)
		assert_int_equal(f.ms.data[WINDOW + i], 0);
	assert_int_equal(f.ms.data[WINDOW + 5100], 9);
	assert_int_equal(run1(&f, AIOL_OP_WRITE_ZEROES, AIOL_F_FAST_ONLY, 0, 4096, NULL),
			 -EOPNOTSUPP);
	assert_int_equal(run1(&f, AIOL_OP_WRITE_ZEROES, 0, 0, 4096, NULL), 0);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_ZERO]), 1);
	fix_close(&f);
}

/* AIOL_F_FIXED_BUF: refused (-EINVAL, nothing reaches the store) unless
 * the store says it takes it; then the index and the offset into the
 * registered buffer reach the primitive as they are. */
static void test_fixed_buf(void **state)
{
	uint64_t size;
	struct fix f;

	(void)state;
	fix_open(&f, 1, AIOL_STORE_FLUSH, false);
	assert_false(aiol_dev_fixed_buf_ok(f.dev, 4096));
	assert_int_equal(run1(&f, AIOL_OP_READ, AIOL_F_FIXED_BUF, 0, 4096, NULL), -EINVAL);
	assert_int_equal(run1(&f, AIOL_OP_WRITE, AIOL_F_FIXED_BUF, 0, 4096, NULL), -EINVAL);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_READ]), 0);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_WRITE]), 0);
	/* and this store cannot change its size */
	assert_int_equal(aiol_dev_refresh_size(f.dev, 0, &size), -EOPNOTSUPP);
	assert_int_equal(aiol_dev_info(f.dev)->size, SIZE);
	fix_close(&f);

	fix_open(&f, 4096, AIOL_STORE_FLUSH | AIOL_STORE_FIXED_BUF, false);
	assert_true(aiol_dev_fixed_buf_ok(f.dev, 4096));
	assert_false(aiol_dev_fixed_buf_ok(f.dev, 512)); /* would need a bounce */
	assert_false(aiol_dev_fixed_buf_ok(f.dev, 0));
	assert_int_equal(run1(&f, AIOL_OP_READ, AIOL_F_FIXED_BUF, 8192, 8192, NULL), 0);
	assert_int_equal(f.ms.fixed_ios, 1);
	assert_int_equal(f.ms.fixed_index, 0);
	f.ms.short_io = true; /* the rest of a short transfer: the offset moves on */
	{
		static struct slot s;

		memset(&s.req, 0, sizeof(s.req));
		s.req.op = AIOL_OP_WRITE;
		s.req.flags = AIOL_F_FIXED_BUF;
		s.req.off = 4096;
		s.req.len = 16384;
		s.req.buf = (void *)(uintptr_t)65536;
		s.req.buf_index = 7;
		s.req.done = slot_done;
		s.busy = true;
		assert_int_equal(aiol_submit(f.q, &s.req), 0);
		while (s.busy)
			assert_true(aiol_loop_run_once(f.loop, true) >= 0);
		assert_int_equal(s.res, 0);
	}
	assert_true(f.ms.fixed_ios > 2);
	assert_int_equal(f.ms.fixed_index, 7);
	assert_true(f.ms.fixed_off > 65536 && f.ms.fixed_off < 65536 + 16384);
	assert_int_equal(f.ms.misaligned, 0);
	/* unaligned: a read-modify-write would bounce through our memory */
	assert_int_equal(run1(&f, AIOL_OP_READ, AIOL_F_FIXED_BUF, 512, 4096, NULL), -EINVAL);
	assert_int_equal(run1(&f, AIOL_OP_FLUSH, AIOL_F_FIXED_BUF, 0, 0, NULL), -EINVAL);
	fix_close(&f);
}

/* Online resize: the store finds its new size, the engine validates
 * against it from then on. */
static void test_refresh_size(void **state)
{
	uint8_t buf[4096];
	uint64_t size = 0;
	struct fix f;

	(void)state;
	fix_open(&f, 1, AIOL_STORE_FLUSH, false);
	f.ms.base.ops = &mem_ops_resizable;
	f.ms.new_size = SIZE / 2;
	assert_int_equal(aiol_dev_refresh_size(f.dev, 0, &size), 0);
	assert_int_equal(size, SIZE / 2);
	assert_int_equal(aiol_dev_info(f.dev)->size, SIZE / 2);
	assert_int_equal(aiol_dev_info(f.dev)->backing_size, WINDOW + SIZE / 2);
	assert_int_equal(run1(&f, AIOL_OP_READ, 0, SIZE / 2 - 4096, 4096, buf), 0);
	assert_int_equal(run1(&f, AIOL_OP_READ, 0, SIZE / 2, 4096, buf), -EINVAL);
	assert_int_equal(run1(&f, AIOL_OP_WRITE, 0, SIZE / 2, 4096, buf), -ENOSPC);
	/* a size limit, and a store that finds nothing: the size stays */
	assert_int_equal(aiol_dev_refresh_size(f.dev, 1 * MiB, &size), 0);
	assert_int_equal(aiol_dev_info(f.dev)->size, 1 * MiB);
	f.ms.new_size = 0;
	assert_int_equal(aiol_dev_refresh_size(f.dev, 0, &size), -ENOSPC);
	assert_int_equal(aiol_dev_info(f.dev)->size, 1 * MiB);
	f.ms.new_size = SIZE;
	assert_int_equal(aiol_dev_refresh_size(f.dev, 0, &size), 0);
	assert_int_equal(aiol_dev_info(f.dev)->size, 1 * MiB); /* the limit in force */
	assert_int_equal(aiol_dev_refresh_size(f.dev, SIZE, &size), 0);
	assert_int_equal(aiol_dev_info(f.dev)->size, SIZE);
	assert_int_equal(run1(&f, AIOL_OP_READ, 0, SIZE - 4096, 4096, buf), 0);
	fix_close(&f);
}

/* The encryption stage over a store that is not a file: completions from
 * the store's own thread (as librbd's), short transfers of any length, no
 * alignment below; with and without crypto threads.  ZERO and DISCARD are
 * never passed down (write-zeroes writes encrypted zeroes). */
static void crypt_case(bool foreign, bool short_io, unsigned int threads, unsigned int ss,
		       uint64_t seed)
{
	struct aiol_crypt_opts co = {.geom = {.sector_size = ss}, .threads = threads};
	struct aiol_crypt_key *key;
	struct aiol_store *cst;
	uint8_t kb[64];
	struct fix f;
	int ret;

	memset(&f, 0, sizeof(f));
	f.ms.data = calloc(1, WINDOW + SIZE);
	f.shadow = calloc(1, SIZE);
	assert_non_null(f.ms.data);
	assert_non_null(f.shadow);
	f.ms.foreign = foreign;
	f.ms.short_io = short_io;
	f.ms.base.ops = &mem_ops;
	f.ms.base.info.path = "mem";
	f.ms.base.info.size = SIZE;
	f.ms.base.info.offset = WINDOW;
	f.ms.base.info.backing_size = WINDOW + SIZE;
	f.ms.base.info.block_size = 512;
	f.ms.base.info.dio_align = 1;
	f.ms.base.info.dio_mem_align = 1;
	f.ms.base.caps = AIOL_STORE_FLUSH | AIOL_STORE_FUA | AIOL_STORE_ZERO | AIOL_STORE_DISCARD;
	f.ms.base.discard_align = 1;
	for (unsigned int i = 0; i < sizeof(kb); i++)
		kb[i] = (uint8_t)(seed * 31 + i * 7);
	assert_int_equal(aiol_crypt_spec_parse("aes-xts-plain64", &co.spec), 0);
	assert_int_equal(aiol_crypt_key_new(kb, sizeof(kb), &key), 0);
	co.key = key;
	ret = aiol_crypt_store_open(&f.ms.base, &co, &cst);
	aiol_crypt_key_free(key);
	if (ret == -ENOTSUP) {
		/* A build without ciphers (GnuTLS) refuses the stage; one
		 * with them must not. */
		const char *e = getenv("AIOLOOP_TEST_CIPHERS");

		assert_true(e && !strcmp(e, "0"));
		free(f.ms.data);
		free(f.shadow);
		return;
	}
	assert_int_equal(ret, 0);
	assert_int_equal(aiol_dev_open_store(cst, &f.dev), 0);
	assert_int_equal(aiol_loop_create(NULL, &f.loop), 0);
	assert_int_equal(aiol_queue_create(f.dev, f.loop, NULL, &f.q), 0);
	assert_int_equal(aiol_dev_info(f.dev)->dio_align, ss);
	f.encrypted = true;
	/* A zeroed store decrypts to garbage: zero it through the stage. */
	assert_int_equal(run1(&f, AIOL_OP_WRITE_ZEROES, 0, 0, SIZE, NULL), 0);
	random_io(&f, seed);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_ZERO]), 0);
	assert_int_equal(atomic_load(&f.ms.ops[AIOL_SIO_DISCARD]), 0);
	fix_close(&f);
}

/* The oldest parked io of a manual store, run and completed on the loop
 * thread the way a ring completion is (aiol_store_complete). */
static void complete_parked(struct fix *f)
{
	struct mem_queue *mq = last_queue;
	struct aiol_store_io *io = STAILQ_FIRST(&mq->todo);

	assert_non_null(io);
	STAILQ_REMOVE_HEAD(&mq->todo, link);
	mq->parked--;
	aiol_store_complete(io, mem_exec(&f->ms, io));
}

static struct fix *resubmit_fix;

/* done() that submits the next request at once, as a benchmark or a
 * client at a fixed queue depth does. */
static void resubmit_done(struct aiol_req *req, int res)
{
	struct slot *s = aiol_container_of(req, struct slot, req);

	s->res = res;
	s->busy = false;
	if (resubmit_fix) {
		s->busy = true;
		assert_int_equal(aiol_submit(resubmit_fix->q, req), 0);
	}
}

/*
 * A request completed by its store while others are in flight calls done()
 * before the completion returns, so that a request submitted from done()
 * reaches the store before the loop works through the rest of its batch of
 * completions; the queue's last request completes at the next iteration
 * (its done() may destroy the queue), and done() never runs inside
 * aiol_submit().
 */
static void test_done_in_completion(void **state)
{
	static struct slot s[2];
	struct mem_queue *mq;
	struct fix f;

	(void)state;
	fix_open(&f, 512, AIOL_STORE_FLUSH | AIOL_STORE_FUA, false);
	f.ms.manual = true;
	mq = last_queue;
	for (int i = 0; i < 2; i++) {
		memset(&s[i].req, 0, sizeof(s[i].req));
		s[i].req.op = AIOL_OP_READ;
		s[i].req.off = (uint64_t)i * 4096;
		s[i].req.len = 4096;
		s[i].req.buf = s[i].buf;
		s[i].req.done = resubmit_done;
		s[i].busy = true;
		assert_int_equal(aiol_submit(f.q, &s[i].req), 0);
		assert_true(s[i].busy); /* never inside aiol_submit() */
	}
	assert_int_equal(mq->parked, 2);

	/* Another in flight: done() ran, and its resubmission is parked. */
	resubmit_fix = &f;
	complete_parked(&f);
	assert_int_equal(s[0].res, 0);
	assert_true(s[0].busy);
	assert_int_equal(mq->parked, 2);
	assert_int_equal(aiol_queue_inflight(f.q), 2);

	/* Still another in flight: done() at once, nothing resubmitted. */
	resubmit_fix = NULL;
	complete_parked(&f);
	assert_false(s[1].busy);
	assert_int_equal(mq->parked, 1);
	/* The last request: its done() waits for the loop. */
	complete_parked(&f);
	assert_true(s[0].busy);
	assert_int_equal(aiol_queue_inflight(f.q), 1);
	assert_true(aiol_loop_run_once(f.loop, false) >= 1);
	assert_false(s[0].busy);
	assert_int_equal(s[0].res, 0);
	assert_int_equal(aiol_queue_inflight(f.q), 0);
	fix_close(&f);
}

static void test_crypt_stage(void **state)
{
	(void)state;
	crypt_case(false, false, 0, 512, 11);
	crypt_case(true, false, 2, 4096, 12);
	crypt_case(true, true, 0, 512, 13);
	crypt_case(true, true, 1, 4096, 14);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_aligned_store_loop_thread),
	    cmocka_unit_test(test_foreign_thread_completions),
	    cmocka_unit_test(test_short_transfers),
	    cmocka_unit_test(test_overlapping_in_order),
	    cmocka_unit_test(test_caps),
	    cmocka_unit_test(test_extents),
	    cmocka_unit_test(test_zero_cleared),
	    cmocka_unit_test(test_fixed_buf),
	    cmocka_unit_test(test_refresh_size),
	    cmocka_unit_test(test_done_in_completion),

	    cmocka_unit_test(test_crypt_stage),
	};

	alarm(200); /* a lost completion hangs: fail instead */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
