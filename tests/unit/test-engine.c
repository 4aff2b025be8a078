// SPDX-License-Identifier: MIT
/*
 * Conformance tests of the engine (aioloop/engine.h), run once per
 * backend: io_uring with O_DIRECT (direct=auto) and buffered (direct=off),
 * Linux AIO, the thread pool and the synchronous path.  Every case drives
 * the engine as a frontend does, through a loop on this thread
 * (aiol_loop_run_once until done() ran), and checks the backing file
 * through a separate fd against an in-memory model of what it must hold:
 *
 *   rw_random            random unaligned reads/writes, batches in flight
 *   rw_same_block        many concurrent writes into the same blocks from
 *                        disjoint byte ranges (read-modify-write races)
 *   rw_two_queues        the same, split between two queues (threads)
 *   window               offset + sizelimit: data outside untouched
 *   window_end_neighbour the bytes past an unaligned window end are not
 *                        rewritten under a concurrent writer
 *   past_end             -EINVAL / -ENOSPC, overflow, nothing written
 *   read_only            -EPERM, file byte-identical
 *   fua_flush            FUA writes, flush, visible through another fd
 *   discard_zeroes       holes, zeroes, no-unmap keeps allocation
 *   block_status         extents agree with SEEK_DATA/SEEK_HOLE
 *   tmpfs                direct=auto/on/off on /dev/shm
 *   big_write_zeroes     a 100+ MiB write-zeroes zeroes all of it
 *   arena_pressure       unaligned I/O with a tiny bounce arena, small depth
 *   large_small_arena    one request larger than the whole arena
 *
 * Files go to $TMPDIR or /var/tmp.  The cases of a backend that needs
 * O_DIRECT skip (with the reason) where that directory has none.
 *   bdev_*               the data paths on a block device, only with
 *                        AIOLOOP_TEST_BLOCKDEV=/dev/... (engine-blockdev.sh)
 *
 * Usage: test-engine [FILTER]   (a cmocka glob on "backend: case" names).
 * AIOLOOP_TEST_SEED=N repeats a run's random choices.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <linux/magic.h>

#include "aioloop/engine.h"
#include "aioloop/log.h"
#include "engine-util.h"

#define KiB (1024ull)
#define MiB (1024ull * 1024)

struct cfg {
	const char *name;
	enum aiol_engine engine;
	enum aiol_direct direct;
};

static struct cfg cfgs[] = {
	{ "uring", AIOL_ENGINE_URING, AIOL_DIRECT_AUTO },
	{ "uring-buffered", AIOL_ENGINE_URING, AIOL_DIRECT_OFF },
	{ "aio", AIOL_ENGINE_AIO, AIOL_DIRECT_AUTO },
	{ "threads", AIOL_ENGINE_THREADS, AIOL_DIRECT_AUTO },
	{ "sync", AIOL_ENGINE_SYNC, AIOL_DIRECT_AUTO },
};

static bool g_odirect;		/* the test directory takes O_DIRECT */
static uint64_t g_seed;
static const char *g_bdev;	/* $AIOLOOP_TEST_BLOCKDEV: a scratch block device */

struct fx {
	const struct cfg *cfg;
	char path[PATH_MAX];
	bool is_bdev;		/* path is g_bdev, not a temporary file */
	char extra[PATH_MAX];	/* another scratch file to remove, or "" */
	uint64_t size;		/* of the backing file */
	uint8_t *model;		/* what the backing file must hold */
	struct eng_env env;
	uint64_t rng;
	struct peer *peer;	/* a second queue's thread, when running */
};

static void peer_stop(struct fx *f);

/* ---- fixture ---- */

static int fx_setup(void **state)
{
	const struct cfg *c = *state;
	struct fx *f = calloc(1, sizeof(*f));
	int fd;

	if (!f)
		return -1;
	f->cfg = c;
	f->rng = g_seed ^ ((uint64_t)(uintptr_t)c * 0x9e3779b97f4a7c15ull);
	snprintf(f->path, sizeof(f->path), "%s/aioloop-test-engine.XXXXXX", eng_tmpdir());
	fd = mkstemp(f->path);
	if (fd < 0) {
		print_error("mkstemp in %s: %s\n", eng_tmpdir(), strerror(errno));
		free(f);
		return -1;
	}
	close(fd);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	/* A failed assertion can leave requests in flight: drain them
	 * before the buffers and the loop go away. */
	peer_stop(f);
	if (f->env.loop && f->env.pending)
		eng_drain(&f->env, 30000);
	eng_env_close(&f->env);
	if (!f->is_bdev)
		unlink(f->path);
	if (f->extra[0])
		unlink(f->extra);
	free(f->model);
	free(f);
	return 0;
}

/* Skip a direct=auto backend where O_DIRECT is unavailable: it would only
 * repeat the buffered cases under another name. */
static void fx_need_direct(struct fx *f)
{
	if (f->cfg->direct == AIOL_DIRECT_AUTO && !g_odirect) {
		print_message("# skip - %s: %s has no O_DIRECT (set TMPDIR to a disk file system)\n",
			      f->cfg->name, eng_tmpdir());
		skip();
	}
}

static struct aiol_open_opts fx_opts(const struct fx *f)
{
	struct aiol_open_opts o = {
		.engine = f->cfg->engine,
		.direct = f->cfg->direct,
	};
	return o;
}

/* Write the backing file: size bytes of random data, mirrored in the model. */
static void fx_file(struct fx *f, uint64_t size)
{
	int ret;

	free(f->model);
	f->size = size;
	f->model = malloc(size);
	assert_non_null(f->model);
	ret = eng_make_file(f->path, size, eng_rand(&f->rng), f->model);
	if (ret < 0)
		fail_msg("creating %s: %s", f->path, strerror(-ret));
}

static void fx_open_with(struct fx *f, const struct aiol_open_opts *o,
			 size_t arena, unsigned int depth)
{
	int ret = eng_env_open(&f->env, f->path, o, arena, depth);

	if (ret < 0)
		fail_msg("%s: opening %s: %s", f->cfg->name, f->path, strerror(-ret));
	assert_int_equal(f->env.info->engine, f->cfg->engine);
	if (f->cfg->direct == AIOL_DIRECT_OFF)
		assert_false(f->env.info->direct);
	else if (f->cfg->direct == AIOL_DIRECT_AUTO && g_odirect)
		assert_true(f->env.info->direct);	/* auto takes O_DIRECT when it opens */
}

static void fx_open(struct fx *f)
{
	struct aiol_open_opts o = fx_opts(f);

	fx_open_with(f, &o, 0, 0);
}

static void fx_close(struct fx *f)
{
	eng_env_close(&f->env);
}

/* The completion contract held, nothing is left in flight, and the file
 * holds exactly the model. */
static void fx_check(struct fx *f)
{
	int64_t at;

	if (f->env.q) {
		assert_int_equal(f->env.pending, 0);
		assert_int_equal(aiol_queue_inflight(f->env.q), 0);
		assert_int_equal(f->env.done_in_submit, 0);
		assert_int_equal(f->env.double_done, 0);
	}
	at = eng_file_cmp(f->path, 0, f->model, f->size);
	if (at == -2)
		fail_msg("reading back %s failed", f->path);
	if (at >= 0)
		fail_msg("%s: backing file differs from the model at byte %lld",
			 f->cfg->name, (long long)at);
}

/* One request, waited for. */
static int fx_run(struct fx *f, uint8_t op, uint64_t off, uint64_t len, void *buf,
		  uint32_t flags)
{
	int ret = eng_run(&f->env, op, off, len, buf, flags);

	if (ret == -ETIMEDOUT && f->env.pending)
		fail_msg("%s: request op %u off %llu len %llu never completed",
			 f->cfg->name, op, (unsigned long long)off, (unsigned long long)len);
	return ret;
}

/* Read [off, off+len) of the visible device through the engine and compare
 * it with want. */
static void fx_expect(struct fx *f, uint64_t off, uint64_t len, const uint8_t *want)
{
	uint8_t *got = malloc(len + 1);
	int ret;

	assert_non_null(got);
	memset(got, 0xa5, len);
	ret = fx_run(f, AIOL_OP_READ, off, len, got, 0);
	if (ret != 0)
		fail_msg("%s: read off %llu len %llu: %s", f->cfg->name,
			 (unsigned long long)off, (unsigned long long)len, strerror(-ret));
	for (uint64_t i = 0; i < len; i++)
		if (got[i] != want[i])
			fail_msg("%s: read off %llu len %llu differs at +%llu (0x%02x, want 0x%02x)",
				 f->cfg->name, (unsigned long long)off, (unsigned long long)len,
				 (unsigned long long)i, got[i], want[i]);
	free(got);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	static const uint8_t zero[4096];

	while (n) {
		size_t k = n < sizeof(zero) ? n : sizeof(zero);

		if (memcmp(p, zero, k))
			return false;
		p += k;
		n -= k;
	}
	return true;
}

static blkcnt_t file_blocks(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_blocks;
}

/* ---- random reads and writes ---- */

struct rop {
	struct eng_op op;
	struct aiol_loop *arena;	/* mem is from this loop's arena */
	size_t mem_len;
	uint8_t *mem;
	uint8_t *buf;
	bool write;
	unsigned int order;	/* submission order */
};

/* A length: mostly small and unaligned, sometimes whole blocks, rarely big. */
static uint64_t pick_len(uint64_t *rng, uint64_t max, bool *aligned)
{
	uint64_t r = eng_rand(rng) % 100, len;

	*aligned = false;
	if (r < 50) {
		len = eng_rand_range(rng, 1, 4096);
	} else if (r < 80) {
		len = eng_rand_range(rng, 1, 64 * KiB);
	} else if (r < 95) {
		len = 4096 * eng_rand_range(rng, 1, 32);
		*aligned = true;
	} else {
		len = eng_rand_range(rng, 1, 1 * MiB);
	}
	return len < max ? len : max;
}

/*
 * A buffer for len bytes: a third page-aligned, the rest at odd addresses;
 * a quarter from the loop's registered arena (io_uring fixed buffers) when
 * loop is given and has room, the rest from the heap.
 */
static void rop_alloc_in(struct rop *r, uint64_t *rng, uint64_t len, struct aiol_loop *loop)
{
	size_t mis = 0;

	if (eng_rand(rng) % 3)
		mis = (size_t)eng_rand_range(rng, 1, 4095);
	r->arena = NULL;
	r->mem_len = len + mis;
	if (loop && eng_rand(rng) % 4 == 0 && r->mem_len <= aiol_loop_buf_max(loop) / 4) {
		r->mem = aiol_loop_buf_alloc(loop, r->mem_len);
		if (r->mem)
			r->arena = loop;
	}
	if (!r->arena)
		assert_int_equal(posix_memalign((void **)&r->mem, 4096, r->mem_len), 0);
	r->buf = r->mem + mis;
}

static void rop_free(struct rop *r)
{
	if (r->arena)
		aiol_loop_buf_free(r->arena, r->mem, r->mem_len);
	else
		free(r->mem);
	r->mem = NULL;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/*
 * Batches of 1..32 requests in flight at once.  Within a batch no write
 * overlaps any other request, so the result does not depend on the order
 * the engine completes them; reads are checked against the model as it was
 * before the batch, writes applied to it afterwards.
 */
static void random_batches(struct fx *f, unsigned int nops, uint64_t mbase, uint64_t span)
{
	uint8_t *model = f->model + mbase;	/* byte 0 of the visible device */
	struct rop *b = calloc(32, sizeof(*b));
	unsigned int done_ops = 0;
	bool in_order = f->cfg->engine == AIOL_ENGINE_SYNC;

	assert_non_null(b);
	while (done_ops < nops) {
		unsigned int want = (unsigned int)eng_rand_range(&f->rng, 1, 32), n = 0;

		for (unsigned int tries = 0; n < want && tries < 200; tries++) {
			struct rop *r = &b[n];
			bool aligned, ok = true;
			uint64_t len = pick_len(&f->rng, span, &aligned), off;

			if (aligned && span >= len)
				off = 4096 * eng_rand_range(&f->rng, 0, (span - len) / 4096);
			else
				off = eng_rand_range(&f->rng, 0, span - len);
			r->write = eng_rand(&f->rng) & 1;
			for (unsigned int i = 0; i < n && ok; i++)
				if ((r->write || b[i].write) &&
				    ranges_overlap(off, len, b[i].op.req.off, b[i].op.req.len))
					ok = false;
			if (!ok)
				continue;
			rop_alloc_in(r, &f->rng, len, f->env.loop);
			if (r->write)
				eng_rand_fill(&f->rng, r->buf, len);
			else
				memset(r->buf, 0x5a, len);
			eng_op_init(&r->op, r->write ? AIOL_OP_WRITE : AIOL_OP_READ,
				    off, len, r->buf, 0);
			r->order = n;
			n++;
		}
		for (unsigned int i = 0; i < n; i++)
			assert_int_equal(eng_submit(&f->env, &b[i].op), 0);
		if (eng_drain(&f->env, 30000) < 0)
			fail_msg("%s: a batch of %u requests did not complete", f->cfg->name, n);
		for (unsigned int i = 0; i < n; i++) {
			struct rop *r = &b[i];
			uint64_t off = r->op.req.off, len = r->op.req.len;

			if (r->op.res != 0)
				fail_msg("%s: %s off %llu len %llu buf%%4096=%zu: res %d (%s)",
					 f->cfg->name, r->write ? "write" : "read",
					 (unsigned long long)off, (unsigned long long)len,
					 (size_t)((uintptr_t)r->buf % 4096), r->op.res,
					 strerror(-r->op.res));
			if (!r->write && memcmp(r->buf, model + off, len)) {
				uint64_t at = 0;

				while (r->buf[at] == model[off + at])
					at++;
				fail_msg("%s: read off %llu len %llu wrong at +%llu",
					 f->cfg->name, (unsigned long long)off,
					 (unsigned long long)len, (unsigned long long)at);
			}
			/* The synchronous backend completes in submission order. */
			if (in_order)
				assert_int_equal(r->op.seq - b[0].op.seq, r->order);
		}
		for (unsigned int i = 0; i < n; i++) {
			if (b[i].write)
				memcpy(model + b[i].op.req.off, b[i].buf, b[i].op.req.len);
			rop_free(&b[i]);
		}
		done_ops += n;
	}
	free(b);
}

static void rw_random(void **state)
{
	struct fx *f = *state;
	uint8_t *all;

	fx_need_direct(f);
	fx_file(f, 4 * MiB);
	fx_open(f);
	assert_int_equal(f->env.info->size, 4 * MiB);
	assert_int_equal(f->env.info->backing_size, 4 * MiB);
	assert_int_equal(f->env.info->offset, 0);
	assert_false(f->env.info->read_only);

	random_batches(f, 1500, 0, f->size);

	/* The first and the last byte, alone. */
	f->model[0] ^= 0xff;
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, 0, 1, f->model, 0), 0);
	f->model[f->size - 1] ^= 0xff;
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, f->size - 1, 1, f->model + f->size - 1, 0), 0);
	/* The whole device in one request. */
	fx_expect(f, 0, f->size, f->model);
	/* A readahead hint is harmless. */
	assert_int_equal(fx_run(f, AIOL_OP_CACHE, 12345, 1 * MiB, NULL, 0), 0);

	all = malloc(f->size);
	assert_non_null(all);
	if (g_odirect) {
		/* What O_DIRECT readers (the disk) see, not only the cache. */
		assert_int_equal(aiol_dev_sync(f->env.dev), 0);
		assert_int_equal(eng_read_file(f->path, 0, f->size, all, true), 0);
		assert_memory_equal(all, f->model, f->size);
	}
	free(all);
	fx_check(f);
}

/* ---- concurrent writes into the same blocks ---- */

/*
 * A region straddling block boundaries is cut into disjoint pieces of
 * 1..700 bytes (a few larger, some whole aligned blocks), and all pieces of
 * a round are written at once in random order.  With O_DIRECT every piece
 * that does not cover whole blocks needs a read-modify-write of its blocks;
 * an engine that does not serialise those loses some pieces.  Each round
 * cuts differently, so each byte's final value is the one its piece wrote.
 */
/*
 * A second queue of the same dev on its own thread and loop, as a second
 * NBD connection has: it submits the requests it is handed each round and
 * runs its loop until they are done.
 */
struct peer {
	struct aiol_dev *dev;
	struct eng_env env;
	pthread_t thread;
	pthread_barrier_t go, done;
	bool in_round;		/* past "go", not yet past "done" */
	struct rop **list;
	unsigned int n;
	bool quit;
	bool init_failed;
	int err;
};

static void *peer_thread(void *arg)
{
	struct peer *pp = arg;
	struct aiol_queue_opts qo = { 0 };

	pp->err = aiol_loop_create(NULL, &pp->env.loop);
	if (!pp->err)
		pp->err = aiol_queue_create(pp->dev, pp->env.loop, &qo, &pp->env.q);
	pp->init_failed = pp->err != 0;
	pthread_barrier_wait(&pp->go);	/* ready (or failed) */
	while (!pp->init_failed) {
		pthread_barrier_wait(&pp->go);
		if (pp->quit)
			break;
		for (unsigned int i = 0; i < pp->n; i++)
			if (eng_submit(&pp->env, &pp->list[i]->op) < 0)
				pp->err = -EINVAL;
		if (eng_drain(&pp->env, 30000) < 0)
			pp->err = -ETIMEDOUT;
		pthread_barrier_wait(&pp->done);
	}
	pp->env.dev = NULL;	/* the fixture's */
	eng_env_close(&pp->env);
	return NULL;
}

/* Start a peer on f's dev (f->peer); fails the test if it cannot. */
static void peer_start(struct fx *f)
{
	struct peer *pp = calloc(1, sizeof(*pp));

	assert_non_null(pp);
	pp->dev = f->env.dev;
	pthread_barrier_init(&pp->go, NULL, 2);
	pthread_barrier_init(&pp->done, NULL, 2);
	assert_int_equal(pthread_create(&pp->thread, NULL, peer_thread, pp), 0);
	f->peer = pp;
	pthread_barrier_wait(&pp->go);
	if (pp->err)
		fail_msg("%s: a second queue on the dev: %s", f->cfg->name, strerror(-pp->err));
}

/* Stop f's peer, if any, also after a failure in the middle of a round. */
static void peer_stop(struct fx *f)
{
	struct peer *pp = f->peer;

	if (!pp)
		return;
	if (!pp->init_failed) {
		if (pp->in_round)
			pthread_barrier_wait(&pp->done);
		pp->quit = true;
		pthread_barrier_wait(&pp->go);
	}
	pthread_join(pp->thread, NULL);
	pthread_barrier_destroy(&pp->go);
	pthread_barrier_destroy(&pp->done);
	free(pp->list);
	free(pp);
	f->peer = NULL;
}

/* Each round's pieces go to f's queue, or alternately to f's queue and
 * peer's (when peer is given), all submitted at once in random order. */
static void same_block_rounds(struct fx *f, uint64_t base, uint64_t span, struct peer *peer)
{
	struct rop *p, **mine;
	unsigned int *perm;
	size_t maxp = span;

	p = calloc(maxp, sizeof(*p));
	perm = calloc(maxp, sizeof(*perm));
	mine = calloc(maxp, sizeof(*mine));
	assert_non_null(p);
	assert_non_null(perm);
	assert_non_null(mine);
	if (peer) {
		peer->list = calloc(maxp, sizeof(*peer->list));
		assert_non_null(peer->list);
	}

	for (unsigned int round = 0; round < 12; round++) {
		uint64_t off = base;
		unsigned int n = 0;

		while (off < base + span) {
			uint64_t r = eng_rand(&f->rng) % 100, len;

			if (r < 85)
				len = eng_rand_range(&f->rng, 1, 700);
			else if (r < 95)
				len = eng_rand_range(&f->rng, 700, 9000);
			else	/* up to the next boundary, then two whole blocks */
				len = 4096 - off % 4096 + 8192;
			if (len > base + span - off)
				len = base + span - off;
			rop_alloc_in(&p[n], &f->rng, len, peer ? NULL : f->env.loop);
			eng_rand_fill(&f->rng, p[n].buf, len);
			eng_op_init(&p[n].op, AIOL_OP_WRITE, off, len, p[n].buf, 0);
			perm[n] = n;
			n++;
			off += len;
		}
		for (unsigned int i = n - 1; i > 0; i--) {
			unsigned int j = (unsigned int)eng_rand_range(&f->rng, 0, i), t = perm[i];

			perm[i] = perm[j];
			perm[j] = t;
		}
		{
			unsigned int nmine = 0;

			if (peer)
				peer->n = 0;
			for (unsigned int i = 0; i < n; i++) {
				if (peer && (i & 1))
					peer->list[peer->n++] = &p[perm[i]];
				else
					mine[nmine++] = &p[perm[i]];
			}
			if (peer) {
				pthread_barrier_wait(&peer->go);
				peer->in_round = true;
			}
			for (unsigned int i = 0; i < nmine; i++)
				assert_int_equal(eng_submit(&f->env, &mine[i]->op), 0);
			if (eng_drain(&f->env, 30000) < 0)
				fail_msg("%s: round %u: %u writes did not complete", f->cfg->name,
					 round, nmine);
			if (peer) {
				pthread_barrier_wait(&peer->done);
				peer->in_round = false;
				if (peer->err)
					fail_msg("%s: round %u: the second queue's writes: %s",
						 f->cfg->name, round, strerror(-peer->err));
			}
		}
		for (unsigned int i = 0; i < n; i++) {
			if (p[i].op.res != 0)
				fail_msg("%s: round %u: write off %llu len %llu: %s", f->cfg->name,
					 round, (unsigned long long)p[i].op.req.off,
					 (unsigned long long)p[i].op.req.len, strerror(-p[i].op.res));
			memcpy(f->model + p[i].op.req.off, p[i].buf, p[i].op.req.len);
			rop_free(&p[i]);
		}
		{
			int64_t at = eng_file_cmp(f->path, base, f->model + base, span);

			if (at >= 0) {
				uint64_t bad = base + (uint64_t)at;
				unsigned int who = 0;

				for (unsigned int i = 0; i < n; i++)
					if (bad >= p[i].op.req.off &&
					    bad < p[i].op.req.off + p[i].op.req.len)
						who = i;
				fail_msg("%s: round %u (%u writes in flight on %d queues): byte %llu "
					 "lost, written by off %llu len %llu",
					 f->cfg->name, round, n, peer ? 2 : 1, (unsigned long long)bad,
					 (unsigned long long)p[who].op.req.off,
					 (unsigned long long)p[who].op.req.len);
			}
		}
	}
	if (peer) {
		free(peer->list);
		peer->list = NULL;
	}
	free(mine);
	free(perm);
	free(p);
}

static void rw_same_block(void **state)
{
	struct fx *f = *state;

	fx_need_direct(f);
	fx_file(f, 2 * MiB);
	fx_open(f);
	same_block_rounds(f, 1 * MiB - 3000, 48 * KiB + 777, NULL);
	fx_check(f);
}

/* The same with every round split between two queues on two threads. */
static void rw_two_queues(void **state)
{
	struct fx *f = *state;

	fx_need_direct(f);
	fx_file(f, 2 * MiB);
	fx_open(f);
	peer_start(f);
	same_block_rounds(f, 1 * MiB - 3000, 48 * KiB + 777, f->peer);
	peer_stop(f);
	fx_check(f);
}

/* ---- offset and sizelimit ---- */

static void window(void **state)
{
	struct fx *f = *state;
	struct aiol_open_opts o = fx_opts(f);
	const uint64_t woff = 320 * KiB, limit = 1 * MiB + 1000;
	uint64_t size;
	uint8_t *w, buf[64];

	fx_need_direct(f);
	fx_file(f, 2 * MiB);
	o.offset = woff;
	o.sizelimit = limit;
	fx_open_with(f, &o, 0, 0);
	size = f->env.info->size;
	w = f->model + woff;
	assert_int_equal(f->env.info->offset, woff);
	assert_int_equal(f->env.info->backing_size, 2 * MiB);
	/* The visible size is the limit, or the limit rounded down to a block. */
	assert_true(size <= limit);
	assert_true(size + f->env.info->block_size > limit);

	/* Random traffic inside the window only. */
	random_batches(f, 300, woff, size);
	/* First and last visible bytes, and a write ending exactly at the end. */
	w[0] = 0x11;
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, 0, 1, w, 0), 0);
	eng_rand_fill(&f->rng, w + size - 5000, 5000);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, size - 5000, 5000, w + size - 5000, 0), 0);
	fx_expect(f, 0, size, w);
	fx_expect(f, size - 1, 1, w + size - 1);

	/* Zeroing and discarding at the window's edges stays inside it. */
	assert_int_equal(fx_run(f, AIOL_OP_WRITE_ZEROES, size - 9000, 9000, NULL, 0), 0);
	memset(w + size - 9000, 0, 9000);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE_ZEROES, 0, 3000, NULL, AIOL_F_NO_UNMAP), 0);
	memset(w, 0, 3000);
	assert_int_equal(fx_run(f, AIOL_OP_DISCARD, 4096, 8192, NULL, 0), 0);
	memset(w + 4096, 0, 8192);
	fx_expect(f, 0, size, w);

	/* Past the window's end: refused, nothing written. */
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(fx_run(f, AIOL_OP_READ, size - 1, 2, buf, 0), -EINVAL);
	assert_int_equal(fx_run(f, AIOL_OP_READ, size, 1, buf, 0), -EINVAL);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, size - 10, 20, buf, 0), -ENOSPC);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, size, 1, buf, 0), -ENOSPC);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE_ZEROES, size - 4096, 8192, NULL, 0), -ENOSPC);
	fx_check(f);
}

/*
 * A window whose end is not aligned to the direct I/O alignment: a write to
 * its last partial block must not rewrite the bytes past the window's end
 * that share the block, because something else (another dev on the
 * adjacent window, another process) may be writing them.  A thread keeps
 * writing those bytes with plain pwrite and reading them back; a read-back
 * that differs means the engine wrote stale bytes over them.
 */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct neighbour {
	const char *path;
	uint64_t at;
	_Atomic int stop;
	int lost;
	_Atomic int rounds;
};

static void *neighbour_thread(void *arg)
{
	struct neighbour *n = arg;
	int fd = open(n->path, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	for (unsigned int v = 1; !n->stop; v++) {
		uint8_t w[24], r[24];

		memset(w, (int)(v & 0xff) | 1, sizeof(w));
		if (pwrite(fd, w, sizeof(w), (off_t)n->at) != (ssize_t)sizeof(w))
			break;
		usleep(100);
		if (pread(fd, r, sizeof(r), (off_t)n->at) != (ssize_t)sizeof(r))
			break;
		if (memcmp(w, r, sizeof(r)))
			n->lost++;
		n->rounds++;
	}
	close(fd);
	return NULL;
}

static void window_end_neighbour(void **state)
{
	struct fx *f = *state;
	struct aiol_open_opts o = fx_opts(f);
	struct neighbour nb = { .path = f->path };
	uint8_t buf[100];
	pthread_t t;
	uint64_t size;
	double t0 = now_s();

	fx_need_direct(f);
	fx_file(f, 2 * MiB);
	o.sizelimit = 1 * MiB + 1000;
	fx_open_with(f, &o, 0, 0);
	size = f->env.info->size;
	nb.at = size;	/* the first byte past the window */
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(pthread_create(&t, NULL, neighbour_thread, &nb), 0);
	/* 1500 writes or 0.7 s, whichever comes first, but on until the other
	 * writer has had 20 rounds (a loaded machine may not have run it yet),
	 * at most 5 s. */
	for (int i = 0;; i++) {
		if (i % 64 == 0) {
			double now = now_s();

			if (now > t0 + 5 || ((i >= 1500 || now > t0 + 0.7) && nb.rounds >= 20))
				break;
		}
		if (fx_run(f, AIOL_OP_WRITE, size - sizeof(buf), sizeof(buf), buf, 0) != 0)
			break;
	}
	nb.stop = 1;
	pthread_join(t, NULL);
	if (nb.lost)
		fail_msg("%s (direct %d): %d of %d writes just past the window's end (byte %llu) "
			 "were overwritten by the engine's writes to the window's last block",
			 f->cfg->name, f->env.info->direct, nb.lost, nb.rounds,
			 (unsigned long long)nb.at);
	if (nb.rounds == 0) {
		print_message("# skip - %s: the other writer never ran in 5 s (machine too busy)\n",
			      f->cfg->name);
		skip();
	}
}

/* ---- past the end ---- */

static void past_end(void **state)
{
	struct fx *f = *state;
	uint8_t buf[8192];
	uint64_t size;
	int ret;

	fx_need_direct(f);
	fx_file(f, 1 * MiB);
	fx_open(f);
	size = f->env.info->size;
	assert_int_equal(size, 1 * MiB);
	memset(buf, 0xee, sizeof(buf));

	assert_int_equal(fx_run(f, AIOL_OP_READ, size - 100, 200, buf, 0), -EINVAL);
	assert_int_equal(fx_run(f, AIOL_OP_READ, size, 512, buf, 0), -EINVAL);
	assert_int_equal(fx_run(f, AIOL_OP_READ, UINT64_MAX - 5, 10, buf, 0), -EINVAL);
	assert_int_equal(fx_run(f, AIOL_OP_READ, 512, UINT64_MAX, buf, 0), -EINVAL);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, size - 100, 200, buf, 0), -ENOSPC);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, size - 4096, 8192, buf, AIOL_F_FUA), -ENOSPC);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, size, 1, buf, 0), -ENOSPC);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, UINT64_MAX - 5, 10, buf, 0), -ENOSPC);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, 1, UINT64_MAX, buf, 0), -ENOSPC);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE_ZEROES, size - 100, 200, NULL, 0), -ENOSPC);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE_ZEROES, UINT64_MAX - 5, 10, NULL, 0), -ENOSPC);
	/* Discard past the end: a refusal, -EINVAL or -ENOSPC. */
	ret = fx_run(f, AIOL_OP_DISCARD, size - 4096, 8192, NULL, 0);
	assert_true(ret == -EINVAL || ret == -ENOSPC);
	{
		struct aiol_extent ext[4];
		struct eng_op op;

		eng_op_init(&op, AIOL_OP_BLOCK_STATUS, size - 512, 1024, NULL, 0);
		op.req.ext = ext;
		op.req.ext_max = 4;
		assert_int_equal(eng_submit(&f->env, &op), 0);
		assert_int_equal(eng_drain(&f->env, 30000), 0);
		assert_int_equal(op.res, -EINVAL);
	}
	assert_int_equal(fx_run(f, AIOL_OP_CACHE, size - 100, 200, NULL, 0), -EINVAL);
	/* The file did not grow and nothing changed. */
	{
		struct stat st;

		assert_int_equal(stat(f->path, &st), 0);
		assert_int_equal(st.st_size, (off_t)f->size);
	}
	/* The last bytes up to the end are fine. */
	fx_expect(f, size - 100, 100, f->model + size - 100);
	fx_check(f);
}

/* ---- read-only ---- */

static void read_only(void **state)
{
	struct fx *f = *state;
	struct aiol_open_opts o = fx_opts(f);
	struct stat before, after;
	uint8_t buf[4096];
	int ret;

	fx_need_direct(f);
	fx_file(f, 1 * MiB);
	assert_int_equal(stat(f->path, &before), 0);
	o.read_only = true;
	fx_open_with(f, &o, 0, 0);
	assert_true(f->env.info->read_only);
	memset(buf, 0xee, sizeof(buf));

	assert_int_equal(fx_run(f, AIOL_OP_WRITE, 0, 4096, buf, 0), -EPERM);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, 100, 1, buf, AIOL_F_FUA), -EPERM);
	assert_int_equal(fx_run(f, AIOL_OP_DISCARD, 0, 64 * KiB, NULL, 0), -EPERM);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE_ZEROES, 4096, 4096, NULL, 0), -EPERM);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE_ZEROES, 4096, 4096, NULL, AIOL_F_NO_UNMAP), -EPERM);
	/* Flushing a read-only dev may succeed or be refused, not fail otherwise. */
	ret = fx_run(f, AIOL_OP_FLUSH, 0, 0, NULL, 0);
	assert_true(ret == 0 || ret == -EPERM);
	fx_expect(f, 777, 300000, f->model + 777);
	fx_check(f);
	fx_close(f);

	assert_int_equal(stat(f->path, &after), 0);
	assert_int_equal(after.st_size, before.st_size);
	assert_int_equal(after.st_blocks, before.st_blocks);
	assert_true(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
		    after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
	fx_check(f);
}

/* ---- FUA and flush ---- */

static void fua_flush(void **state)
{
	struct fx *f = *state;
	uint8_t *got;

	fx_need_direct(f);
	fx_file(f, 1 * MiB);
	fx_open(f);
	assert_true(f->env.info->caps & AIOL_CAP_FLUSH);
	assert_true(f->env.info->caps & AIOL_CAP_FUA);

	for (int i = 0; i < 20; i++) {
		bool aligned;
		uint64_t len = pick_len(&f->rng, 128 * KiB, &aligned);
		uint64_t off = eng_rand_range(&f->rng, 0, f->size - len);

		eng_rand_fill(&f->rng, f->model + off, len);
		assert_int_equal(fx_run(f, AIOL_OP_WRITE, off, len, f->model + off, AIOL_F_FUA), 0);
		/* Each FUA write is visible through another fd at once. */
		assert_true(eng_file_cmp(f->path, off, f->model + off, len) == -1);
	}
	eng_rand_fill(&f->rng, f->model + 4096, 65536);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, 4096, 65536, f->model + 4096, 0), 0);
	assert_int_equal(fx_run(f, AIOL_OP_FLUSH, 0, 0, NULL, 0), 0);
	assert_int_equal(aiol_dev_sync(f->env.dev), 0);

	/* Read past the page cache where the file system allows it. */
	got = malloc(f->size);
	assert_non_null(got);
	if (g_odirect) {
		assert_int_equal(eng_read_file(f->path, 0, f->size, got, true), 0);
		assert_memory_equal(got, f->model, f->size);
	}
	free(got);
	fx_check(f);
}

/* ---- discard and write-zeroes ---- */

static void discard_zeroes(void **state)
{
	struct fx *f = *state;
	blkcnt_t b0, b1;
	uint8_t *got;
	int fd, ret;

	fx_need_direct(f);
	fx_file(f, 4 * MiB);
	fx_open(f);
	assert_true(f->env.info->caps & AIOL_CAP_DISCARD);
	assert_true(f->env.info->caps & AIOL_CAP_WRITE_ZEROES);

	/* Aligned discard: a hole, reading zeroes, blocks freed. */
	b0 = file_blocks(f->path);
	assert_int_equal(fx_run(f, AIOL_OP_DISCARD, 1 * MiB, 256 * KiB, NULL, 0), 0);
	memset(f->model + 1 * MiB, 0, 256 * KiB);
	b1 = file_blocks(f->path);
	assert_true(b1 + 256 <= b0);
	fd = open(f->path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 1 * MiB, SEEK_HOLE), (off_t)(1 * MiB));
	assert_int_equal(lseek(fd, 1 * MiB, SEEK_DATA), (off_t)(1 * MiB + 256 * KiB));
	fx_expect(f, 1 * MiB - 10, 256 * KiB + 20, f->model + 1 * MiB - 10);

	/* Unaligned write-zeroes: exactly its bytes, neighbours intact. */
	assert_int_equal(fx_run(f, AIOL_OP_WRITE_ZEROES, 2 * MiB + 100, 300000, NULL, 0), 0);
	memset(f->model + 2 * MiB + 100, 0, 300000);
	fx_expect(f, 2 * MiB, 310000, f->model + 2 * MiB);

	/* No-unmap: zeroes, and the allocation stays. */
	b0 = file_blocks(f->path);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE_ZEROES, 3 * MiB, 128 * KiB, NULL,
				AIOL_F_NO_UNMAP), 0);
	memset(f->model + 3 * MiB, 0, 128 * KiB);
	b1 = file_blocks(f->path);
	assert_true(b1 >= b0);
	fx_expect(f, 3 * MiB - 1, 128 * KiB + 2, f->model + 3 * MiB - 1);

	/* Fast-only on a file system that zeroes fast: done, or -ENOTSUP
	 * with nothing changed when the dev says it cannot. */
	ret = fx_run(f, AIOL_OP_WRITE_ZEROES, 3 * MiB + 200 * KiB, 64 * KiB, NULL,
		     AIOL_F_FAST_ONLY);
	if (f->env.info->caps & AIOL_CAP_FAST_ZERO) {
		assert_int_equal(ret, 0);
		memset(f->model + 3 * MiB + 200 * KiB, 0, 64 * KiB);
	} else {
		assert_int_equal(ret, -ENOTSUP);
	}
	ret = fx_run(f, AIOL_OP_WRITE_ZEROES, 3 * MiB + 300 * KiB, 5000, NULL,
		     AIOL_F_FAST_ONLY | AIOL_F_NO_UNMAP);
	if (f->env.info->caps & AIOL_CAP_FAST_ZERO) {
		assert_int_equal(ret, 0);
		memset(f->model + 3 * MiB + 300 * KiB, 0, 5000);
	} else {
		assert_int_equal(ret, -ENOTSUP);
	}

	/* Unaligned discard: neighbours intact; inside, each byte is either
	 * what it was or zero (partial blocks may be left alone). */
	assert_int_equal(fx_run(f, AIOL_OP_DISCARD, 5000, 3000, NULL, 0), 0);
	got = malloc(3000);
	assert_non_null(got);
	assert_int_equal(eng_read_file(f->path, 5000, 3000, got, false), 0);
	for (int i = 0; i < 3000; i++) {
		assert_true(got[i] == 0 || got[i] == f->model[5000 + i]);
		f->model[5000 + i] = got[i];
	}
	free(got);
	close(fd);
	fx_check(f);
}

/* ---- block status ---- */

/* Check the extents of [off, off+len) of the visible device (whose byte 0
 * is byte base of the file) against the file: a HOLE extent has no data, a
 * ZERO extent reads as zeroes.  Returns the bytes covered. */
static uint64_t check_extents(struct fx *f, uint64_t base, uint64_t off, uint64_t len,
			      struct aiol_extent *ext, uint32_t n)
{
	uint64_t pos = off;
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_true(n >= 1);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t start = base + pos, end = start + ext[i].len;

		assert_true(ext[i].len > 0);
		assert_true(ext[i].len <= off + len - pos);
		assert_int_equal(ext[i].flags & ~(uint32_t)(AIOL_EXT_HOLE | AIOL_EXT_ZERO), 0);
		if (ext[i].flags & AIOL_EXT_HOLE) {
			off_t d = lseek(fd, (off_t)start, SEEK_DATA);

			if (!(d < 0 || (uint64_t)d >= end))
				fail_msg("%s: extent [%llu, +%llu) said hole, data at %lld",
					 f->cfg->name, (unsigned long long)pos,
					 (unsigned long long)ext[i].len, (long long)d);
		}
		if (ext[i].flags & AIOL_EXT_ZERO)
			assert_true(all_zero(f->model + start, ext[i].len));
		pos += ext[i].len;
	}
	close(fd);
	return pos - off;
}

static int block_status(struct fx *f, uint64_t off, uint64_t len,
			struct aiol_extent *ext, uint32_t max, uint32_t *count)
{
	struct eng_op op;

	eng_op_init(&op, AIOL_OP_BLOCK_STATUS, off, len, NULL, 0);
	op.req.ext = ext;
	op.req.ext_max = max;
	assert_int_equal(eng_submit(&f->env, &op), 0);
	assert_int_equal(eng_drain(&f->env, 30000), 0);
	*count = op.req.ext_count;
	return op.res;
}

static void block_status_test(void **state)
{
	struct fx *f = *state;
	struct aiol_extent ext[64];
	struct aiol_open_opts o;
	uint32_t n;
	uint64_t covered;
	int fd;

	fx_need_direct(f);
	/* 4 MiB of data with a hole at [1 MiB, 2 MiB), then 2 MiB of hole. */
	fx_file(f, 4 * MiB);
	fd = open(f->path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   1 * MiB, 1 * MiB), 0);
	assert_int_equal(ftruncate(fd, 6 * MiB), 0);
	close(fd);
	f->model = realloc(f->model, 6 * MiB);
	assert_non_null(f->model);
	memset(f->model + 1 * MiB, 0, 1 * MiB);
	memset(f->model + 4 * MiB, 0, 2 * MiB);
	f->size = 6 * MiB;

	fx_open(f);
	assert_true(f->env.info->caps & AIOL_CAP_BLOCK_STATUS);

	assert_int_equal(block_status(f, 0, 6 * MiB, ext, 64, &n), 0);
	assert_true(n <= 64);
	covered = check_extents(f, 0, 0, 6 * MiB, ext, n);
	assert_true(covered > 0);
	/* The first megabyte is data. */
	assert_false(ext[0].flags & AIOL_EXT_HOLE);
	assert_true(ext[0].len <= 1 * MiB);

	/* Starting inside the hole: the first extent is a hole. */
	assert_int_equal(block_status(f, 1 * MiB + 4096, 100 * KiB, ext, 64, &n), 0);
	check_extents(f, 0, 1 * MiB + 4096, 100 * KiB, ext, n);
	assert_true(ext[0].flags & AIOL_EXT_HOLE);
	/* The tail past the written part. */
	assert_int_equal(block_status(f, 5 * MiB, 1 * MiB, ext, 64, &n), 0);
	check_extents(f, 0, 5 * MiB, 1 * MiB, ext, n);
	assert_true(ext[0].flags & AIOL_EXT_HOLE);
	/* One slot: one extent. */
	assert_int_equal(block_status(f, 0, 6 * MiB, ext, 1, &n), 0);
	assert_int_equal(n, 1);
	check_extents(f, 0, 0, 6 * MiB, ext, n);
	/* Unaligned query. */
	assert_int_equal(block_status(f, 1 * MiB - 1000, 3000, ext, 64, &n), 0);
	check_extents(f, 0, 1 * MiB - 1000, 3000, ext, n);
	assert_false(ext[0].flags & AIOL_EXT_HOLE);

	/* Through a window at 512 KiB: the hole is at [512 KiB, 1.5 MiB). */
	fx_close(f);
	o = fx_opts(f);
	o.offset = 512 * KiB;
	o.sizelimit = 2 * MiB;
	fx_open_with(f, &o, 0, 0);
	assert_int_equal(block_status(f, 0, 2 * MiB, ext, 64, &n), 0);
	assert_true(check_extents(f, 512 * KiB, 0, 2 * MiB, ext, n) > 0);
	assert_false(ext[0].flags & AIOL_EXT_HOLE);
	assert_true(ext[0].len <= 512 * KiB);
	assert_int_equal(block_status(f, 600 * KiB, 100 * KiB, ext, 64, &n), 0);
	check_extents(f, 512 * KiB, 600 * KiB, 100 * KiB, ext, n);
	assert_true(ext[0].flags & AIOL_EXT_HOLE);
	assert_int_equal(block_status(f, 2 * MiB - 512, 1024, ext, 64, &n), -EINVAL);

	/* Through a window at an unaligned offset (1000): the hole is at
	 * [1 MiB - 1000, 2 MiB - 1000) of the device. */
	fx_close(f);
	o.offset = 1000;
	o.sizelimit = 3 * MiB;
	assert_int_equal(eng_env_open(&f->env, f->path, &o, 0, 0), 0);
	assert_int_equal(block_status(f, 0, 3 * MiB, ext, 64, &n), 0);
	assert_true(check_extents(f, 1000, 0, 3 * MiB, ext, n) > 0);
	assert_false(ext[0].flags & AIOL_EXT_HOLE);
	assert_true(ext[0].len <= 1 * MiB - 1000);
	assert_int_equal(block_status(f, 1 * MiB, 4096, ext, 64, &n), 0);
	check_extents(f, 1000, 1 * MiB, 4096, ext, n);
	assert_true(ext[0].flags & AIOL_EXT_HOLE);
	fx_check(f);
}

/* ---- tmpfs ---- */

/*
 * tmpfs has no direct I/O: before Linux 6.6 open(O_DIRECT) fails, since
 * then it succeeds but still goes through the page cache.  Either way
 * direct=auto must run buffered and direct=on must refuse the file without
 * touching it; direct=off works.  Linux AIO cannot be asynchronous on a
 * buffered file, so an aio dev may come back as another engine.
 */
static void tmpfs(void **state)
{
	struct fx *f = *state;
	struct aiol_open_opts o = fx_opts(f);
	struct statfs sfs;
	char *path = f->extra;
	uint8_t *data, buf[8192];
	int fd, ret;

	if (statfs("/dev/shm", &sfs) < 0 || sfs.f_type != TMPFS_MAGIC) {
		print_message("# skip - %s: /dev/shm is not a tmpfs\n", f->cfg->name);
		skip();
	}
	snprintf(path, sizeof(f->extra), "/dev/shm/aioloop-test-engine.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	data = malloc(1 * MiB);
	assert_non_null(data);
	assert_int_equal(eng_make_file(path, 1 * MiB, eng_rand(&f->rng), data), 0);

	/* on: refused, nothing written. */
	o.direct = AIOL_DIRECT_ON;
	ret = eng_env_open(&f->env, path, &o, 0, 0);
	if (ret == 0)
		eng_env_close(&f->env);
	assert_true(ret < 0);
	assert_true(eng_file_cmp(path, 0, data, 1 * MiB) == -1);

	for (int pass = 0; pass < 2; pass++) {
		/* auto, then off: buffered, and the data path works. */
		o.direct = pass ? AIOL_DIRECT_OFF : AIOL_DIRECT_AUTO;
		assert_int_equal(eng_env_open(&f->env, path, &o, 0, 0), 0);
		assert_false(f->env.info->direct);
		if (o.engine != AIOL_ENGINE_AIO)
			assert_int_equal(f->env.info->engine, o.engine);
		memset(data + 1000 + pass, 0x77 + pass, 5000);
		assert_int_equal(eng_run(&f->env, AIOL_OP_WRITE, 1000 + pass, 5000,
					 data + 1000 + pass, 0), 0);
		assert_int_equal(eng_run(&f->env, AIOL_OP_READ, 900, 8192, buf, 0), 0);
		assert_memory_equal(buf, data + 900, 8192);
		/* tmpfs punches holes but has no zero-range: fast-only
		 * no-unmap zeroes either work or say -ENOTSUP. */
		ret = eng_run(&f->env, AIOL_OP_WRITE_ZEROES, 64 * KiB, 64 * KiB, NULL,
			      AIOL_F_NO_UNMAP | AIOL_F_FAST_ONLY);
		assert_true(ret == 0 || ret == -ENOTSUP);
		if (ret == 0)
			memset(data + 64 * KiB, 0, 64 * KiB);
		/* Plain write-zeroes works (by punching). */
		assert_int_equal(eng_run(&f->env, AIOL_OP_WRITE_ZEROES, 200 * KiB + 7, 70000,
					 NULL, 0), 0);
		memset(data + 200 * KiB + 7, 0, 70000);
		assert_int_equal(f->env.done_in_submit, 0);
		eng_env_close(&f->env);
		assert_true(eng_file_cmp(path, 0, data, 1 * MiB) == -1);
	}
	unlink(path);
	free(data);
}

/* ---- a large write-zeroes ---- */

/* Every byte of [off, off+len) of the file is zero: holes by SEEK_DATA /
 * SEEK_HOLE, data regions read. */
static void expect_zero_range(const char *path, uint64_t off, uint64_t len)
{
	size_t chunk = 4 * MiB;
	uint8_t *buf = malloc(chunk);
	uint64_t pos = off, end = off + len;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_non_null(buf);
	assert_true(fd >= 0);
	while (pos < end) {
		off_t d = lseek(fd, (off_t)pos, SEEK_DATA), h;

		if (d < 0 || (uint64_t)d >= end)
			break;
		h = lseek(fd, d, SEEK_HOLE);
		assert_true(h > d);
		pos = (uint64_t)d;
		while (pos < (uint64_t)h && pos < end) {
			uint64_t n = end - pos;

			if (n > chunk)
				n = chunk;
			if (n > (uint64_t)h - pos)
				n = (uint64_t)h - pos;
			assert_int_equal(pread(fd, buf, n, (off_t)pos), (ssize_t)n);
			if (!all_zero(buf, n)) {
				size_t i = 0;

				while (!buf[i])
					i++;
				fail_msg("byte %llu of the zeroed range is not zero",
					 (unsigned long long)(pos + i - off));
			}
			pos += n;
		}
	}
	close(fd);
	free(buf);
}

static void big_write_zeroes(void **state)
{
	struct fx *f = *state;
	const uint64_t fsize = 110 * MiB, off = 3 * MiB + 1234, len = 101 * MiB + 4321;
	uint8_t stamp[4096], edge[2][4096];
	int fd;

	fx_need_direct(f);
	fd = open(f->path, O_RDWR | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)fsize), 0);
	close(fd);
	fx_open(f);

	for (int pass = 0; pass < 2; pass++) {
		uint32_t flags = pass ? AIOL_F_NO_UNMAP : 0;

		/* Stamps of data every MiB and right around the range. */
		fd = open(f->path, O_RDWR | O_CLOEXEC);
		assert_true(fd >= 0);
		for (uint64_t p = 2 * MiB; p < fsize; p += 1 * MiB) {
			eng_rand_fill(&f->rng, stamp, sizeof(stamp));
			assert_int_equal(pwrite(fd, stamp, sizeof(stamp), (off_t)p),
					 (ssize_t)sizeof(stamp));
		}
		eng_rand_fill(&f->rng, edge, sizeof(edge));
		assert_int_equal(pwrite(fd, edge[0], 4096, (off_t)(off - 4096)), 4096);
		assert_int_equal(pwrite(fd, edge[1], 4096, (off_t)(off + len)), 4096);
		assert_int_equal(fsync(fd), 0);
		close(fd);

		assert_int_equal(fx_run(f, AIOL_OP_WRITE_ZEROES, off, len, NULL, flags), 0);
		expect_zero_range(f->path, off, len);
		assert_true(eng_file_cmp(f->path, off - 4096, edge[0], 4096) == -1);
		assert_true(eng_file_cmp(f->path, off + len, edge[1], 4096) == -1);
	}
}

/* ---- memory pressure ---- */

/*
 * A 256 KiB arena and a queue depth of 4 with 48 unaligned requests of up
 * to 200 KiB from odd addresses in flight: O_DIRECT needs bounce buffers
 * the arena cannot hold at once, so requests must wait for memory and for
 * slots inside the engine and still all complete correctly.
 */
static void arena_pressure(void **state)
{
	struct fx *f = *state;
	struct aiol_open_opts o = fx_opts(f);
	struct rop *r = calloc(48, sizeof(*r));
	uint64_t off = 777;

	fx_need_direct(f);
	assert_non_null(r);
	fx_file(f, 16 * MiB);
	fx_open_with(f, &o, 256 * KiB, 4);
	for (int pass = 0; pass < 2; pass++) {
		bool wr = pass == 0;

		off = 777;
		for (int i = 0; i < 48; i++) {
			uint64_t len = eng_rand_range(&f->rng, 1, 200 * KiB);

			assert_int_equal(posix_memalign((void **)&r[i].mem, 4096, len + 1), 0);
			r[i].buf = r[i].mem + 1;
			if (wr)
				eng_rand_fill(&f->rng, r[i].buf, len);
			eng_op_init(&r[i].op, wr ? AIOL_OP_WRITE : AIOL_OP_READ, off, len,
				    r[i].buf, 0);
			off += len + eng_rand_range(&f->rng, 0, 5000);
		}
		for (int i = 0; i < 48; i++)
			assert_int_equal(eng_submit(&f->env, &r[i].op), 0);
		if (eng_drain(&f->env, 30000) < 0)
			fail_msg("%s: requests waiting for bounce memory never completed",
				 f->cfg->name);
		for (int i = 0; i < 48; i++) {
			uint64_t o2 = r[i].op.req.off, len = r[i].op.req.len;

			assert_int_equal(r[i].op.res, 0);
			if (wr)
				memcpy(f->model + o2, r[i].buf, len);
			else
				assert_memory_equal(r[i].buf, f->model + o2, len);
			free(r[i].mem);
		}
	}
	free(r);
	fx_check(f);
}

/* One 3 MiB request from an odd address with a 1 MiB arena: the engine
 * must split it (or need no bounce), not wait forever for memory. */
static void large_small_arena(void **state)
{
	struct fx *f = *state;
	struct aiol_open_opts o = fx_opts(f);
	const uint64_t off = 777, len = 3 * MiB + 1;
	uint8_t *mem = NULL;

	fx_need_direct(f);
	fx_file(f, 8 * MiB);
	fx_open_with(f, &o, 1 * MiB, 0);
	assert_int_equal(posix_memalign((void **)&mem, 4096, len + 1), 0);
	eng_rand_fill(&f->rng, mem + 1, len);
	memcpy(f->model + off, mem + 1, len);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, off, len, mem + 1, 0), 0);
	memset(mem, 0, len + 1);
	assert_int_equal(fx_run(f, AIOL_OP_READ, off, len, mem + 1, 0), 0);
	assert_memory_equal(mem + 1, f->model + off, len);
	free(mem);
	fx_check(f);
}

/* ---- a block device ---- */

/*
 * With AIOLOOP_TEST_BLOCKDEV set (engine-blockdev.sh sets it to a scratch
 * loop device), these cases run the data paths on a block device, where
 * the engine uses the block ioctls instead of fallocate.  Its whole
 * content is overwritten.
 */
static void fx_bdev(struct fx *f)
{
	uint64_t size;
	int fd;

	unlink(f->path);
	snprintf(f->path, sizeof(f->path), "%s", g_bdev);
	f->is_bdev = true;
	fd = open(f->path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ioctl(fd, BLKGETSIZE64, &size), 0);
	close(fd);
	free(f->model);
	f->size = size;
	f->model = malloc(size);
	assert_non_null(f->model);
	eng_rand_fill(&f->rng, f->model, size);
	fd = open(f->path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (uint64_t off = 0; off < size; off += 1 * MiB) {
		size_t n = size - off < 1 * MiB ? (size_t)(size - off) : 1 * MiB;

		assert_int_equal(pwrite(fd, f->model + off, n, (off_t)off), (ssize_t)n);
	}
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

static void bdev_rw(void **state)
{
	struct fx *f = *state;
	uint8_t buf[4096];

	fx_need_direct(f);
	fx_bdev(f);
	fx_open(f);
	assert_true(f->env.info->is_blockdev);
	assert_int_equal(f->env.info->size, f->size);
	random_batches(f, 1000, 0, f->size);
	same_block_rounds(f, 5 * MiB - 3000, 40 * KiB + 777, NULL);
	fx_expect(f, f->size - 1000, 1000, f->model + f->size - 1000);
	assert_int_equal(fx_run(f, AIOL_OP_READ, f->size - 1000, 2000, buf, 0), -EINVAL);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, f->size - 1000, 2000, buf, 0), -ENOSPC);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE, 1000, 3000, buf, AIOL_F_FUA), 0);
	memcpy(f->model + 1000, buf, 3000);
	assert_int_equal(fx_run(f, AIOL_OP_FLUSH, 0, 0, NULL, 0), 0);
	fx_check(f);
}

static void bdev_zero(void **state)
{
	struct fx *f = *state;
	uint8_t *got;
	int ret;

	fx_need_direct(f);
	fx_bdev(f);
	fx_open(f);
	/* Write-zeroes: exactly its bytes, with and without unmap. */
	assert_int_equal(fx_run(f, AIOL_OP_WRITE_ZEROES, 1 * MiB + 100, 1 * MiB, NULL, 0), 0);
	memset(f->model + 1 * MiB + 100, 0, 1 * MiB);
	assert_int_equal(fx_run(f, AIOL_OP_WRITE_ZEROES, 3 * MiB, 256 * KiB + 7, NULL,
				AIOL_F_NO_UNMAP), 0);
	memset(f->model + 3 * MiB, 0, 256 * KiB + 7);
	fx_check(f);
	/* Fast-only: done as the caps say. */
	ret = fx_run(f, AIOL_OP_WRITE_ZEROES, 4 * MiB, 64 * KiB, NULL, AIOL_F_FAST_ONLY);
	if (f->env.info->caps & AIOL_CAP_FAST_ZERO) {
		assert_int_equal(ret, 0);
		memset(f->model + 4 * MiB, 0, 64 * KiB);
	} else {
		assert_int_equal(ret, -ENOTSUP);
	}
	fx_check(f);
	/* Discard: whatever it did (zeroes or nothing), only in its range. */
	ret = fx_run(f, AIOL_OP_DISCARD, 6 * MiB, 1 * MiB, NULL, 0);
	if (f->env.info->caps & AIOL_CAP_DISCARD)
		assert_int_equal(ret, 0);
	else
		assert_int_equal(ret, -EOPNOTSUPP);
	got = malloc(1 * MiB);
	assert_non_null(got);
	assert_int_equal(eng_read_file(f->path, 6 * MiB, 1 * MiB, got, false), 0);
	for (size_t i = 0; i < 1 * MiB; i++)
		assert_true(got[i] == 0 || got[i] == f->model[6 * MiB + i]);
	memcpy(f->model + 6 * MiB, got, 1 * MiB);
	free(got);
	fx_check(f);
}

static void bdev_block_status(void **state)
{
	struct fx *f = *state;
	struct aiol_extent ext[16];
	uint32_t n;
	int ret;

	fx_need_direct(f);
	fx_bdev(f);
	fx_open(f);
	ret = block_status(f, 1000, 2 * MiB, ext, 16, &n);
	if (!(f->env.info->caps & AIOL_CAP_BLOCK_STATUS) && ret == -EOPNOTSUPP)
		return;
	assert_int_equal(ret, 0);
	assert_true(check_extents(f, 0, 1000, 2 * MiB, ext, n) > 0);
	/* Random data everywhere: nothing may be reported as zero. */
	for (uint32_t i = 0; i < n; i++)
		assert_false(ext[i].flags & AIOL_EXT_ZERO);
	assert_int_equal(block_status(f, f->size - 512, 1024, ext, 16, &n), -EINVAL);
}

/* ---- main ---- */

static const struct {
	const char *name;
	CMUnitTestFunction fn;
} cases[] = {
	{ "rw_random", rw_random },
	{ "rw_same_block", rw_same_block },
	{ "rw_two_queues", rw_two_queues },
	{ "window", window },
	{ "window_end_neighbour", window_end_neighbour },
	{ "past_end", past_end },
	{ "read_only", read_only },
	{ "fua_flush", fua_flush },
	{ "discard_zeroes", discard_zeroes },
	{ "block_status", block_status_test },
	{ "tmpfs", tmpfs },
	{ "big_write_zeroes", big_write_zeroes },
	{ "arena_pressure", arena_pressure },
	{ "large_small_arena", large_small_arena },
};

static const struct {
	const char *name;
	CMUnitTestFunction fn;
} bdev_cases[] = {
	{ "bdev_rw", bdev_rw },
	{ "bdev_zero", bdev_zero },
	{ "bdev_block_status", bdev_block_status },
};

#define NCFG (sizeof(cfgs) / sizeof(cfgs[0]))
#define NCASES (sizeof(cases) / sizeof(cases[0]))
#define NBDEV (sizeof(bdev_cases) / sizeof(bdev_cases[0]))

int main(int argc, char **argv)
{
	static struct CMUnitTest tests[NCFG * (NCASES + NBDEV)];
	static char names[NCFG * (NCASES + NBDEV)][64];
	const char *seed = getenv("AIOLOOP_TEST_SEED");
	size_t n = 0;

	aiol_log_setup("test-engine", AIOL_LOG_WARN, NULL);
	g_seed = seed ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL);
	g_odirect = eng_dir_has_odirect(eng_tmpdir());
	printf("# test-engine: files in %s (O_DIRECT %s), AIOLOOP_TEST_SEED=%llu\n",
	       eng_tmpdir(), g_odirect ? "available" : "unavailable",
	       (unsigned long long)g_seed);
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	g_bdev = getenv("AIOLOOP_TEST_BLOCKDEV");
	if (g_bdev && !*g_bdev)
		g_bdev = NULL;
	for (size_t i = 0; i < NCFG; i++) {
		for (size_t j = 0; j < NCASES + (g_bdev ? NBDEV : 0); j++) {
			const char *cname = j < NCASES ? cases[j].name : bdev_cases[j - NCASES].name;

			snprintf(names[n], sizeof(names[n]), "%s: %s", cfgs[i].name, cname);
			tests[n] = (struct CMUnitTest){
				.name = names[n],
				.test_func = j < NCASES ? cases[j].fn : bdev_cases[j - NCASES].fn,
				.setup_func = fx_setup,
				.teardown_func = fx_teardown,
				.initial_state = &cfgs[i],
			};
			n++;
		}
	}
	return _cmocka_run_group_tests("engine", tests, n, NULL, NULL);
}
