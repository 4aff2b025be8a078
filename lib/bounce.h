/* SPDX-License-Identifier: MIT */
/*
 * Bounce buffers for read-modify-write, with a "granted now, or resumed
 * later" interface.  A bounce is taken from the loop's arena (registered
 * with the ring, so the store can use fixed-buffer I/O on it); when the
 * arena has no room, from the queue's reserve buffer (allocated once, so
 * that unaligned I/O progresses even when the arena is filled by buffers
 * that wait for this queue's requests); when that is busy too, the caller's
 * work item waits in a queue-local list and runs (deferred, on the loop)
 * whenever a bounce of this pool is given back, to try again.
 *
 * Thread model: loop thread only.
 */
#ifndef AIOLOOP_BOUNCE_H
#define AIOLOOP_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include "aioloop/loop.h"

struct bounce_pool {
	struct aiol_loop *loop;
	void *reserve;
	size_t reserve_len;
	bool reserve_busy;
	STAILQ_HEAD(, aiol_work) waiters;
};

struct bounce {
	void *buf; /* NULL: none held */
	size_t len;
	bool reserve;
};

/* reserve_len: the largest bounce asked for.  Returns 0 or -ENOMEM. */
int bounce_pool_init(struct bounce_pool *bp, struct aiol_loop *loop, size_t reserve_len);
void bounce_pool_fini(struct bounce_pool *bp);

/* Take len (<= reserve_len) bytes into b: true now; otherwise w runs on
 * the loop once some bounce of this pool is given back (the caller then
 * asks again). */
bool bounce_get(struct bounce_pool *bp, struct bounce *b, size_t len, struct aiol_work *w);
/* Give b back (nothing if it holds none) and wake the waiters. */
void bounce_put(struct bounce_pool *bp, struct bounce *b);

#endif
