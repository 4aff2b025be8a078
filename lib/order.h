/* SPDX-License-Identifier: MIT */
/*
 * Write ordering for read-modify-write, with a "granted now, or resumed
 * later" interface.
 *
 * A read-modify-write writes back bytes it did not receive, so it must not
 * overlap any other write in flight: an RMW waits for overlapping writes
 * entered before it, and writes (aligned ones, discards and write-zeroes
 * included) entered after it wait for it when they overlap its aligned
 * extent.
 *
 * Within a queue (one loop thread): each write-like request enters the
 * queue's list in submission order with its range: RMWs exclusive over the
 * aligned superset, everything else shared over its own range.  An entry
 * is granted when no earlier entry (granted or waiting) overlaps it with
 * either of the two exclusive; entries leave when their request finishes,
 * and the waiting entries they unblock are then resumed, in order.  Shared
 * entries never conflict with each other, so when no RMW is listed an
 * aligned write is granted at once, in O(1).
 *
 * Across queues (threads) of the same dev: the dev has ORD_STRIPES atomic
 * words, one per stripe of 64 KiB granules (granule number modulo
 * ORD_STRIPES).  Once granted in its own queue, an entry takes, all or
 * nothing, the stripes of its range: exclusively the stripes of the partial
 * first and last blocks of an RMW (the only bytes it writes back without
 * having been given them), shared all the others.  A shared hold is one
 * fetch_add; a word with an exclusive holder or one pending refuses shared
 * holds; an exclusive hold needs a word with no holder and marks the word
 * pending when it has to wait, so that new shared holds stop coming.  An
 * entry that cannot take its stripes gives back what it took, marks the
 * word it failed on as waited for and sleeps on the dev's waiter list;
 * whoever then gives back a hold on a waited-for word resumes the entries
 * waiting on it through their loops' inboxes, and they try again.  No
 * thread ever blocks or spins while it waits, and nothing is locked on the
 * aligned path (the waiter list's mutex is taken only by waiters and by
 * those who give back a waited-for word).  Across queues this gives
 * atomicity (no write is lost), not an order: writes of different
 * connections have none.  The stripes belong to one dev: two opens of the
 * same file, or other processes writing it, are not covered.
 *
 * Thread model: an ord_queue and its entries belong to one loop thread; an
 * ord_dev is shared, its words atomic and its waiter list under its mutex
 * (lock order: ord_dev.mu only; never held while calling out).
 */
#ifndef AIOLOOP_ORDER_H
#define AIOLOOP_ORDER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "aioloop/loop.h"

#define ORD_STRIPES 1024u
#define ORD_STRIPE_SHIFT 16

struct ord_dev;
struct ord_queue;

/* One write-like request's place; embedded in the request. */
struct ord_entry {
	/* Set by the caller before ord_acquire(): called on the loop thread
	 * once an entry that was not granted at once is. */
	void (*granted)(struct ord_entry *e);

	/* private */
	struct ord_queue *oq;
	TAILQ_ENTRY(ord_entry) link;  /* the queue's list */
	TAILQ_ENTRY(ord_entry) wlink; /* the dev's waiters */
	struct aiol_work work;	      /* resume on the loop */
	uint64_t start, end;
	bool held, excl, granted_q, st_held, waiting;
	uint8_t st_nexcl;
	uint16_t st_excl[2];
	uint16_t wait_stripe;
};

struct ord_queue {
	struct ord_dev *od;
	struct aiol_loop *loop;
	uint64_t align;
	TAILQ_HEAD(ord_list, ord_entry) list;
	unsigned int excl_count;
};

/* The dev-wide part.  Returns 0 or -ENOMEM. */
int ord_dev_create(struct ord_dev **out);
void ord_dev_destroy(struct ord_dev *od);

void ord_queue_init(struct ord_queue *oq, struct ord_dev *od, struct aiol_loop *loop,
		    uint64_t align);

/*
 * Enter e for [off, off + len) (len > 0); rmw: e rewrites the partial
 * blocks at either end (exclusive over the aligned superset), else shared
 * over its own range.  Returns true when granted now; otherwise
 * e->granted(e) runs on the loop thread once it is.  Loop thread only.
 */
bool ord_acquire(struct ord_queue *oq, struct ord_entry *e, uint64_t off, uint64_t len, bool rmw);
/* Leave, granted or not (a waiting entry is taken off every list); the
 * entries it unblocked are resumed.  Loop thread only. */
void ord_release(struct ord_entry *e);

static inline bool ord_held(const struct ord_entry *e)
{
	return e->held;
}

#endif
