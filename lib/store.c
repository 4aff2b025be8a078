// SPDX-License-Identifier: MIT
/*
 * What every store shares (aioloop/store.h): delivering a completion into
 * the queue's loop from the loop thread later, or from any other thread
 * through the loop's cross-thread inbox; and clearing capability bits
 * that the store found it does not have.  Depends on the loop only.
 */
#include "aioloop/store.h"

static void complete_work(struct aiol_work *w)
{
	struct aiol_store_io *io = aiol_container_of(w, struct aiol_store_io, work);

	io->done(io, io->res);
}

void aiol_store_complete_later(struct aiol_store_queue *sq, struct aiol_store_io *io, int res)
{
	io->res = res;
	io->work.fn = complete_work;
	aiol_loop_defer(sq->loop, &io->work);
}

void aiol_store_complete_post(struct aiol_store_queue *sq, struct aiol_store_io *io, int res)
{
	io->res = res;
	io->work.fn = complete_work;
	aiol_loop_post(sq->loop, &io->work);
}

uint32_t aiol_store_cap_clear(struct aiol_store *st, uint32_t caps)
{
	return __atomic_fetch_and(&st->caps, ~caps, __ATOMIC_RELAXED) & caps;
}
