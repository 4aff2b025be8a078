/* SPDX-License-Identifier: MIT */
/*
 * Private structures of the engine, shared by engine.c (dispatch,
 * validation, short transfers), rmw.c (unaligned direct I/O and write
 * ordering), probe.c (opening a backing) and the backends (uring.c, aio.c,
 * threads.c, sync.c).  Never installed.
 *
 * How a request flows:
 *
 *   aiol_submit()            validates once (eng_validate), then either
 *                            completes the request with an error or a zero
 *                            length (deferred: done() never runs inside
 *                            aiol_submit), parks it in the queue's FIFO when
 *                            `depth` requests are already started, or starts
 *                            it.
 *   eng_start() / eng_step() a small state machine per op that turns the
 *                            request into "primitives" (struct eng_io: one
 *                            read, write, fdatasync, fallocate, fadvise or
 *                            block-status walk on the backing fd at a backing
 *                            offset) and issues them one at a time.
 *   backend->issue()         runs the primitive (ring op, iocb, pool thread,
 *                            or inline for sync) and reports its result with
 *                            eng_io_done() on the loop thread.
 *   eng_io_done()            the one place that handles -EAGAIN (resubmit),
 *                            short transfers (resubmit the rest) and
 *                            zero-byte reads (-EIO), then hands the result
 *                            back to eng_step().
 *   eng_finish()             frees what the request held (bounce buffer,
 *                            range lock), starts the next parked request and
 *                            defers done() to the loop.
 *
 * All per-request state lives in aiol_req._priv (struct eng_priv, checked by
 * a static_assert); per-queue tables are sized by the queue depth at
 * aiol_queue_create().  Nothing on the data path allocates memory sized by a
 * request: bounce memory is taken from the loop's arena in bounded chunks.
 */
#ifndef AIOLOOP_ENGINE_INTERNAL_H
#define AIOLOOP_ENGINE_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/time_types.h>

#include "aioloop/engine.h"
#include "aioloop/loop.h"

/* Largest read/write primitive (the ring's res is an int). */
#define ENG_IO_MAX	(1u << 30)
/* Largest step of a read-modify-write or of writing zeroes by hand. */
#define ENG_CHUNK	(1u << 20)
/* How often -EAGAIN is resubmitted before it is passed on. */
#define ENG_EAGAIN_MAX	1000

/* Dev-wide write locks: one atomic word per stripe of ENG_STRIPE_BYTES
 * granules, the granule number taken modulo ENG_STRIPES (rmw.c). */
#define ENG_STRIPES		1024u
#define ENG_STRIPE_SHIFT	16
/* How long a write waits before it tries a busy stripe again. */
#define ENG_STRIPE_RETRY_NS	50000

/* Private capability bits (dev->fl); the public caps are derived from them. */
#define ENG_FL_PUNCH	(1u << 0)	/* fallocate PUNCH_HOLE|KEEP_SIZE works */
#define ENG_FL_ZERO	(1u << 1)	/* fallocate ZERO_RANGE|KEEP_SIZE works */

struct aiol_dev {
	struct aiol_dev_info info;	/* info.caps is updated atomically */
	int fd;
	uint32_t fl;		/* ENG_FL_*, cleared atomically on EOPNOTSUPP */
	uint32_t *stripes;	/* direct devs: ENG_STRIPES write-lock words (rmw.c) */
	unsigned int threads;	/* threads engine: pool size */
	unsigned int bdev_lbs;	/* logical block size of a block device backing, else 1 */
	uint64_t sizelimit;	/* as opened (or last refreshed), 0: none */
	char *path;
};

enum eng_io_kind {
	IO_READ = 0,
	IO_WRITE,
	IO_FSYNC,
	IO_FALLOC,
	IO_FADVISE,
	IO_BLKSTAT,
};

/* One primitive on the backing fd.  off is a backing offset. */
struct eng_io {
	uint8_t kind;		/* enum eng_io_kind */
	bool fua;		/* IO_WRITE: RWF_DSYNC */
	int mode;		/* IO_FALLOC: fallocate mode */
	uint64_t off;
	uint64_t len;		/* IO_READ/IO_WRITE: <= ENG_IO_MAX */
	void *buf;
};

struct aiol_req;

/* Request stages (eng_priv.stage). */
enum eng_stage {
	ST_NONE = 0,
	ST_LOCK,	/* waiting for the write-ordering range lock */
	ST_RW,		/* chunks of a plain read/write straight from req->buf */
	ST_ZWRITE,	/* writing zeroes from q->zbuf */
	ST_CACHE,	/* fadvise chunks */
	ST_FALLOC,	/* one fallocate */
	ST_SYNC_AFTER,	/* fdatasync after a fallocate with FUA */
	ST_ONE,		/* one primitive, then finish */
	ST_RMW,		/* read-modify-write (rmw.c) */
};

/* Per-request private state, in aiol_req._priv. */
struct eng_priv {
	struct aiol_queue *q;
	struct aiol_req *next;		/* FIFO, pool queue or sync trampoline */
	struct aiol_event ev;		/* ring completion (uring backend) */
	struct aiol_work work;		/* defer / post / buffer wait */
	struct eng_io io;		/* the primitive in flight */
	int res;			/* result carried across threads, then final */
	uint16_t eagain;		/* -EAGAIN resubmissions of this primitive */
	uint8_t stage;			/* op state machine */
	uint8_t zmode;			/* write-zeroes strategy (engine.c) */
	uint8_t rstage;			/* read-modify-write step (rmw.c) */
	uint64_t pos;			/* bytes of the request done */
	/* read-modify-write (rmw.c) */
	void *bounce;
	uint32_t bounce_len;
	bool bounce_reserve;		/* bounce is the queue's reserve buffer */
	bool lk_held;			/* in the queue's range-lock list */
	bool lk_excl;
	bool lk_granted;
	uint64_t chunk_end;		/* current chunk: [off + pos, chunk_end) */
	uint64_t lk_start, lk_end;	/* locked range, visible offsets */
	struct aiol_req *lk_prev, *lk_next;
	uint32_t tag;			/* aio: iocb slot */
	/* dev-wide stripe locks (rmw.c) */
	bool st_held;
	uint8_t st_nexcl;
	uint16_t st_excl[2];
};

static_assert(sizeof(struct eng_priv) <= sizeof(((struct aiol_req *)0)->_priv),
	      "struct eng_priv must fit in aiol_req._priv");

static inline struct eng_priv *eng_priv(struct aiol_req *req)
{
	return (struct eng_priv *)(void *)&req->_priv;
}

static inline struct aiol_req *eng_req_of_priv(struct eng_priv *p)
{
	return aiol_container_of(p, struct aiol_req, _priv);
}

struct eng_pool;

/* A backend.  issue() runs p->io of req and reports the result with
 * eng_io_done() on the loop thread, never from inside issue() unless the
 * backend is `inline_exec` (sync), whose results are fed back by the
 * trampoline in engine.c. */
struct eng_backend {
	const char *name;
	bool inline_exec;
	int (*init)(struct aiol_queue *q);
	void (*fini)(struct aiol_queue *q);
	void (*issue)(struct aiol_queue *q, struct aiol_req *req);
	/* Optional: true while the backend has an operation of its own (not
	 * a request's) on the loop ring; the last done() waits for it. */
	bool (*busy)(const struct aiol_queue *q);
};

extern const struct eng_backend eng_backend_uring;
extern const struct eng_backend eng_backend_aio;
extern const struct eng_backend eng_backend_threads;
extern const struct eng_backend eng_backend_sync;

struct eng_aio;

struct aiol_queue {
	struct aiol_dev *dev;
	struct aiol_loop *loop;
	const struct eng_backend *be;
	unsigned int depth;
	unsigned int started;		/* requests past the FIFO, not finished */
	unsigned int outstanding;	/* accepted, done() not yet called */
	struct aiol_req *fifo_head, *fifo_tail;
	bool pumping;			/* eng_pump() is running */
	struct aiol_req *held;		/* last done() held while be->busy() */
	/* inline (sync) trampoline */
	bool in_trampoline;
	struct aiol_req *tramp_head, *tramp_tail;
	/* writing zeroes by hand: a zeroed, aligned buffer of ENG_CHUNK */
	void *zbuf;
	/* rmw.c: range locks, in submission order, and the reserve bounce */
	struct aiol_req *lk_head, *lk_tail;
	unsigned int lk_excl_count;
	struct __kernel_timespec stripe_retry;	/* timeout of a stripe retry */
	void *reserve;
	bool reserve_busy;
	struct aiol_req *reserve_wait_head, *reserve_wait_tail;
	/* backends */
	struct eng_pool *pool;		/* threads backend, or helper of uring/aio */
	int file_slot;			/* uring: registered file or -1 */
	struct eng_aio *aio;
};

/* engine.c */
void eng_io_done(struct aiol_req *req, int res);
/* The same, from the loop at its next iteration (for a backend that
 * learns the result inside issue()). */
void eng_io_done_later(struct aiol_req *req, int res);
/* The backend is no longer busy: run the held done(), if any. */
void eng_release_held(struct aiol_queue *q);
/* The op state machines of engine.c (all but read-modify-write). */
void eng_step_common(struct aiol_req *req, int res);
void eng_issue(struct aiol_req *req);
void eng_finish(struct aiol_req *req, int res);
/* Run p->io of req synchronously; thread-safe (reads only the dev). */
int eng_exec(const struct aiol_dev *dev, struct aiol_req *req);
void eng_cap_clear(struct aiol_dev *dev, uint32_t fl);

/* threads.c: a pool of worker threads running eng_exec(), posting results
 * back to the queue's loop. */
int eng_pool_create(struct aiol_queue *q, unsigned int nthreads, struct eng_pool **out);
void eng_pool_destroy(struct eng_pool *pool);
void eng_pool_issue(struct eng_pool *pool, struct aiol_req *req);

/* rmw.c */
bool eng_rmw_needed(const struct aiol_queue *q, const struct aiol_req *req);
/* Take the write-ordering range lock for req (direct devs).  Returns true
 * when granted now; otherwise req is resumed with eng_resume() later. */
bool eng_lock(struct aiol_queue *q, struct aiol_req *req, bool rmw);
void eng_unlock(struct aiol_queue *q, struct aiol_req *req);
void eng_rmw_start(struct aiol_req *req);
void eng_rmw_step(struct aiol_req *req, int res);
void eng_rmw_release(struct aiol_req *req);
/* engine.c: continue a request that waited for a lock. */
void eng_resume(struct aiol_req *req);

/* Alignment helpers; a is a power of two. */
static inline uint64_t eng_align_down(uint64_t x, uint64_t a)
{
	assert(a && !(a & (a - 1)));
	return x & ~(a - 1);
}

static inline uint64_t eng_align_up(uint64_t x, uint64_t a)
{
	assert(a && !(a & (a - 1)));
	return (x + a - 1) & ~(a - 1);
}

#endif
