// SPDX-License-Identifier: MIT
/*
 * Bounce buffers for read-modify-write (bounce.h): the loop's arena first,
 * then the queue's reserve, then a wait for a bounce of this pool to be
 * given back.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "aioloop/log.h"
#include "bounce.h"

int bounce_pool_init(struct bounce_pool *bp, struct aiol_loop *loop, size_t reserve_len)
{
	bp->loop = loop;
	bp->reserve_len = reserve_len;
	bp->reserve_busy = false;
	STAILQ_INIT(&bp->waiters);
	if (posix_memalign(&bp->reserve, 4096, reserve_len)) {
		bp->reserve = NULL;
		return -ENOMEM;
	}
	return 0;
}

void bounce_pool_fini(struct bounce_pool *bp)
{
	free(bp->reserve);
	bp->reserve = NULL;
}

bool bounce_get(struct bounce_pool *bp, struct bounce *b, size_t len, struct aiol_work *w)
{
	assert(len <= bp->reserve_len);
	b->buf = aiol_loop_buf_alloc(bp->loop, len);
	if (b->buf) {
		b->len = len;
		b->reserve = false;
		return true;
	}
	if (!bp->reserve_busy) {
		bp->reserve_busy = true;
		b->buf = bp->reserve;
		b->len = len;
		b->reserve = true;
		return true;
	}
	STAILQ_INSERT_TAIL(&bp->waiters, w, link);
	AIOL_DEBUG_DATA("a read-modify-write waits for bounce memory");
	return false;
}

void bounce_put(struct bounce_pool *bp, struct bounce *b)
{
	if (!b->buf)
		return;
	if (b->reserve)
		bp->reserve_busy = false;
	else
		aiol_loop_buf_free(bp->loop, b->buf, b->len);
	b->buf = NULL;
	b->len = 0;
	/* Wake every waiter; each tries again and waits again if it must. */
	while (!STAILQ_EMPTY(&bp->waiters)) {
		struct aiol_work *w = STAILQ_FIRST(&bp->waiters);

		STAILQ_REMOVE_HEAD(&bp->waiters, link);
		aiol_loop_defer(bp->loop, w);
	}
}
