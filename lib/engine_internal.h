/* SPDX-License-Identifier: MIT */
/*
 * Private structures of the engine (engine.c), which drives every
 * request's life on top of a store (aioloop/store.h).  Never installed.
 *
 * How a request flows:
 *
 *   aiol_submit()            validates once (eng_validate), then either
 *                            completes the request with an error or a zero
 *                            length (deferred: done() never runs inside
 *                            aiol_submit), parks it in the queue's FIFO when
 *                            `depth` requests are already started, or starts
 *                            it.
 *   eng_start()              a small state machine per op that turns the
 *                            request into primitives (struct aiol_store_io:
 *                            read, write, flush, discard, zero, extents or
 *                            cache hint at a store offset) and submits them
 *                            one at a time to the queue's store queue.
 *                            Write-like requests first enter the write
 *                            ordering (order.h: granted now, or resumed
 *                            later); unaligned ones go through the
 *                            read-modify-write step function (rmw.h) with a
 *                            bounce buffer (bounce.h: granted now, or
 *                            resumed later).
 *   store submit()           runs the primitive and reports its result
 *                            through io->done on the loop thread.
 *   eng_io_done()            the one place that handles -EAGAIN (resubmit),
 *                            short transfers (resubmit the rest) and
 *                            zero-byte reads (-EIO), then hands the result
 *                            back to the op's state machine.
 *   eng_finish()             frees what the request held (bounce buffer,
 *                            ordering entry), starts the next parked request
 *                            and calls done(): at once when it finishes
 *                            inside a store completion (io_done) with other
 *                            requests of the queue in flight, otherwise at
 *                            the loop's next iteration (the last request's
 *                            done() may destroy the queue).
 *
 * All per-request state lives in aiol_req._priv (struct eng_priv, checked by
 * a static_assert).  Nothing on the data path allocates memory sized by a
 * request: bounce memory is taken from the loop's arena in bounded chunks.
 *
 * Module dependencies (one way): engine.c -> order.c, bounce.c, rmw.c,
 * store.c, loop.c, and the file store's open (probe.c) for aiol_dev_open;
 * none of them calls the engine back except through function pointers set
 * by the engine (io->done, ord_entry.granted, work items).
 */
#ifndef AIOLOOP_ENGINE_INTERNAL_H
#define AIOLOOP_ENGINE_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "aioloop/engine.h"
#include "aioloop/loop.h"
#include "aioloop/store.h"
#include "bounce.h"
#include "order.h"
#include "rmw.h"

/* Largest read/write primitive (the ring's res is an int). */
#define ENG_IO_MAX	(1u << 30)
/* Largest step of a read-modify-write or of writing zeroes by hand. */
#define ENG_CHUNK	(1u << 20)
/* How often -EAGAIN is resubmitted before it is passed on. */
#define ENG_EAGAIN_MAX	1000

struct aiol_dev {
	struct aiol_dev_info info;	/* info.caps is updated atomically */
	struct aiol_store *store;
	struct ord_dev *ord; /* stores that need alignment: write ordering */
};

/* Request stages (eng_priv.stage). */
enum eng_stage {
	ST_NONE = 0,
	ST_LOCK,       /* waiting for the write ordering */
	ST_RW,	       /* chunks of a plain read/write straight from req->buf */
	ST_ZWRITE,     /* writing zeroes from q->zbuf */
	ST_CACHE,      /* cache hint chunks */
	ST_FALLOC,     /* one discard or zero */
	ST_SYNC_AFTER, /* flush after a discard or zero with FUA */
	ST_ONE,	       /* one primitive, then finish */
	ST_RMW,	       /* read-modify-write (rmw.h) */
};

/* Per-request private state, in aiol_req._priv. */
struct eng_priv {
	struct aiol_queue *q;
	STAILQ_ENTRY(eng_priv) fifo;	/* parked behind the depth */
	struct aiol_work work;		/* deferred done(), bounce wait */
	struct aiol_store_io io;	/* the primitive in flight */
	int res;			/* final result, for the deferred done() */
	uint16_t eagain;		/* -EAGAIN resubmissions of this primitive */
	uint8_t stage;			/* op state machine */
	uint8_t zmode;			/* write-zeroes strategy */
	uint64_t pos;			/* bytes of the request done */
	struct bounce bounce;		/* read-modify-write */
	struct rmw_state rs;
	struct rmw_io rio;
	struct ord_entry ord; /* write ordering */
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

struct aiol_queue {
	struct aiol_dev *dev;
	struct aiol_loop *loop;
	struct aiol_store_queue *sq;
	unsigned int depth;
	unsigned int started;		/* requests past the FIFO, not finished */
	unsigned int outstanding;	/* accepted, done() not yet called */
	STAILQ_HEAD(, eng_priv) fifo;
	bool pumping;			/* eng_pump() is running */
	unsigned int submitting;	/* inside aiol_submit()'s start of a request */
	unsigned int completing;	/* inside a store completion (io_done) */
	struct aiol_req *held;		/* last done() held while the store is busy */
	/* writing zeroes by hand: a zeroed, aligned buffer of ENG_CHUNK */
	void *zbuf;
	/* stores that need alignment (dev->ord) */
	struct ord_queue ord;
	struct bounce_pool bounce;
};

#endif
