/* SPDX-License-Identifier: MIT */
/*
 * Adaptive polling: when a loop with nothing to run is about to wait for
 * a completion, how long it should poll its ring before it sleeps.
 *
 * A thread that sleeps in io_uring_enter() is woken by an interrupt, a
 * wake-up and a context switch for every completion; on a virtual machine
 * that costs as much as a fast disk's service time.  Polling avoids it but
 * burns the CPU it polls on, so it pays only while completions come close
 * together.  The policy, per ring:
 *
 *  - Nothing in flight: sleep.  Only requests the engine has accepted and
 *    not yet completed count (a socket waiting for its client does not).
 *  - Many in flight (SPIN_BATCH_MIN or more) on a ring that can wake its
 *    thread for a batch (IORING_SETUP_DEFER_TASKRUN): do not poll but
 *    sleep for a quarter of them (at most SPIN_BATCH_MAX), with the cap
 *    as a timeout.  Completions then keep coming while the thread sleeps,
 *    and one wake-up serves several of them: what polling saves at a
 *    high queue depth, without the CPU it burns.  (Completions that the
 *    kernel does not batch, such as a socket's, still wake it at once.)
 *  - The window is SPIN_K times the mean gap between completion batches
 *    (an EWMA in which each new gap weighs 1/8, gaps clamped at twice the
 *    cap), at most the cap (--poll USEC).  When the mean gap
 *    itself exceeds the cap, completions come too far apart: sleep.
 *  - The window counts from the last completion batch, not from now: a
 *    loop that has been busy running callbacks for longer than the window
 *    since its last completion sleeps ("completions have recently arrived
 *    within the window").
 *  - A poll that ends with nothing is a miss; so is one whose yield gave
 *    the CPU away for longer than a moment (the loop decides: the CPU is
 *    wanted by another thread, and polling then only delays us).  After SPIN_MISS_LIMIT misses
 *    in a row polling stops paying: the next `backoff` waits sleep at once;
 *    each further round of misses doubles backoff (up to SPIN_BACKOFF_MAX),
 *    a poll that finds a completion resets it and the miss count.
 *
 * Pure: no clock, no ring; times are passed in (nanoseconds, any
 * monotonic origin), so the unit test can feed it sequences.  One struct
 * per loop, used by the loop's thread only.
 */
#ifndef AIOL_SPIN_H
#define AIOL_SPIN_H

#include <stdbool.h>
#include <stdint.h>

#define SPIN_K 4	      /* window = SPIN_K x mean gap */
#define SPIN_EWMA_SHIFT 3     /* each gap weighs 1/8 in the mean */
#define SPIN_MISS_LIMIT 4     /* misses in a row before backing off */
#define SPIN_BACKOFF_MIN 4u   /* waits slept through at the first back-off */
#define SPIN_BACKOFF_MAX 256u /* ... at most */
#define SPIN_BATCH_MIN 8u     /* in flight from which a batch is slept for */
#define SPIN_BATCH_MAX 16u    /* completions one wake-up waits for, at most */

struct aiol_spin {
	uint64_t cap_ns;      /* upper bound of one poll; 0: never poll */
	uint64_t gap_ns;      /* mean gap between completion batches */
	uint64_t last_ns;     /* when the last batch was seen; 0: none yet */
	unsigned int misses;  /* polls in a row that found nothing */
	unsigned int backoff; /* waits to sleep through at the next back-off */
	unsigned int skip;    /* waits left to sleep through now */
	bool batch;	      /* the ring wakes its thread for a batch */
	/* counters, for statistics */
	uint64_t polls, hits, sleeps;
};

/* Start with the window at the cap (polling is presumed to pay until
 * completions show otherwise).  cap_us 0: never poll.  batch: the ring
 * can sleep for several completions at once (DEFER_TASKRUN). */
void aiol_spin_init(struct aiol_spin *s, unsigned int cap_us, bool batch);

/* A pass of the loop reaped one or more completions at now_ns. */
void aiol_spin_seen(struct aiol_spin *s, uint64_t now_ns);

/*
 * The loop is about to wait with inflight requests in flight.  Returns how
 * many nanoseconds to poll from now_ns (0: sleep at once) and counts the
 * decision; a poll must be followed by aiol_spin_outcome().
 */
uint64_t aiol_spin_decide(struct aiol_spin *s, unsigned int inflight, uint64_t now_ns);

/* How many completions to sleep for when the loop does not poll (1: the
 * first one).  The timeout of a batch is cap_ns. */
unsigned int aiol_spin_batch(const struct aiol_spin *s, unsigned int inflight);

/* How many completions to sleep for when the loop does not poll (1: the
 * first one).  The timeout of a batch is cap_ns. */
unsigned int aiol_spin_batch(const struct aiol_spin *s, unsigned int inflight);

/* The poll decided on found a completion (hit) or ran out (miss). */
void aiol_spin_outcome(struct aiol_spin *s, bool hit);

/* The current window (SPIN_K x mean gap, capped; 0 if the mean gap is
 * over the cap), before recency and back-off are applied. */
uint64_t aiol_spin_window(const struct aiol_spin *s);

#endif
