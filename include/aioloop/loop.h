/* SPDX-License-Identifier: MIT */
/*
 * aioloop event loop: one io_uring per thread, shared by everything that
 * thread does (socket reads and writes of a frontend, disk I/O of the
 * engine, timers).  Nothing here is thread-safe except
 * aiol_loop_post(): a loop belongs to the thread that runs it.
 *
 * Every SQE submitted through a loop carries, in user_data, a pointer to a
 * caller-owned struct aiol_event that stays valid until its CQE has been
 * dispatched.  Events are embedded in preallocated slots (connection,
 * request, queue tag), never allocated per completion.
 *
 * The loop also owns the thread's I/O buffer arena: one anonymous mapping
 * of a fixed size, registered with the ring as fixed buffer 0, from which
 * aligned data buffers are carved.  Its size is the in-flight byte cap of
 * the thread; nothing on the data path allocates memory sized by a client.
 * Only what is needed is touched and registered (pinned): the arena is
 * used from its start, in a prefix that doubles from 8 MiB when no free
 * run fits in it.
 */
#ifndef AIOLOOP_LOOP_H
#define AIOLOOP_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <linux/time_types.h>

struct io_uring;
struct io_uring_sqe;
struct aiol_loop;

/* A completion target.  fn is called on the loop thread with the CQE's res
 * and flags.  For multishot requests it may be called several times. */
struct aiol_event {
	void (*fn)(struct aiol_event *ev, int res, unsigned int cqe_flags);
};

/* Deferred work: run on the loop thread at the next iteration.  Used to
 * complete requests outside the submitter's stack and to wake waiters. */
struct aiol_work {
	void (*fn)(struct aiol_work *w);
	STAILQ_ENTRY(aiol_work) link; /* the loop's; also its cross-thread inbox */
	bool queued;
};

/* The struct an event or work item is embedded in, from the pointer the
 * callback gets: aiol_container_of(ev, struct conn, rx_ev). */
#define aiol_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct aiol_loop_opts {
	unsigned int entries;	/* SQ size; 0: 256 */
	size_t arena_bytes;	/* in-flight buffer cap of this thread; 0: 64 MiB */
	unsigned int flags;	/* extra io_uring setup flags (IORING_SETUP_SQE128 for
				 * uring_cmd users: every SQE is then 128 bytes) */
	unsigned int submit_batch;	/* while running completions and deferred work, submit as soon as
					 * this many SQEs are ready; 0: once per pass */
	unsigned int poll_us;	/* before sleeping for a completion, poll the ring for
				 * at most this many microseconds (yielding the CPU to
				 * anything else runnable), only while requests are in
				 * flight and for a window learnt from the gaps between
				 * completions; 0: sleep at once */
	unsigned int kernel_bufs;	/* empty registered-buffer slots after the arena
					 * (indices 1..kernel_bufs) for buffers the kernel
					 * installs (ublk zero copy); 0: none */
};

/* Create a loop for the calling thread.  Returns 0 or -errno. */
int aiol_loop_create(const struct aiol_loop_opts *opts, struct aiol_loop **out);
/* Destroy; the caller has drained everything it submitted.  Work posted by
 * other threads may already have run: a poster still finishing its
 * aiol_loop_post() call is waited for. */
void aiol_loop_destroy(struct aiol_loop *loop);

/* The ring, for frontends that prepare their own SQEs (sockets, uring_cmd). */
struct io_uring *aiol_loop_ring(struct aiol_loop *loop);

/* Get an SQE whose user_data points at ev.  Never returns NULL: when the
 * SQ is full it submits first.  ev may be NULL for SQEs whose completion is
 * of no interest (their CQEs are dropped). */
struct io_uring_sqe *aiol_loop_sqe(struct aiol_loop *loop, struct aiol_event *ev);

/* Requests in flight on this loop go up (delta > 0) or down: the polling
 * policy polls only while some are.  The engine counts the requests
 * accepted by its queues on the loop; a frontend need not.  Loop thread
 * only. */
void aiol_loop_inflight(struct aiol_loop *loop, int delta);

/* Submit pending SQEs, wait for at least one completion (unless work is
 * pending or wait is false), dispatch all CQEs and run all deferred work.
 * Returns the number of events dispatched or -errno. */
int aiol_loop_run_once(struct aiol_loop *loop, bool wait);

/* Queue w to run on the loop thread at the next iteration (loop thread only). */
void aiol_loop_defer(struct aiol_loop *loop, struct aiol_work *w);

/* Cross-thread completion: queue w from any thread and wake the loop.
 * Lock-free (MPSC stack + eventfd). */
void aiol_loop_post(struct aiol_loop *loop, struct aiol_work *w);

/*
 * Timers on the loop's ring (IORING_OP_TIMEOUT), embedded in the caller's
 * struct.  fn runs on the loop thread with 0 once ns have passed, or with
 * -ECANCELED after aiol_timer_cancel() got there first; either way exactly
 * once per aiol_timer_start(), and the struct must stay valid until then.
 * A timer is started again only after its fn has run.
 */
struct aiol_timer {
	void (*fn)(struct aiol_timer *t, int res);
	/* private */
	struct aiol_event ev;
	struct __kernel_timespec ts;
	bool armed;
};

void aiol_timer_start(struct aiol_loop *loop, struct aiol_timer *t, uint64_t ns);
/* Ask for an armed timer to end early (fn then runs with -ECANCELED, or
 * with 0 if it expired meanwhile); nothing if it is not armed. */
void aiol_timer_cancel(struct aiol_loop *loop, struct aiol_timer *t);
/* Between aiol_timer_start() and the call of fn. */
bool aiol_timer_armed(const struct aiol_timer *t);

/* Make sure the next n aiol_loop_sqe() calls go into one submission
 * (submits what is pending when fewer than n SQEs are free). */
void aiol_loop_sq_reserve(struct aiol_loop *loop, unsigned int n);

/*
 * A deadline for one operation: link a timeout to sqe (just prepared with
 * aiol_loop_sqe() after aiol_loop_sq_reserve(loop, 2), not yet submitted:
 * the prep helpers clear the SQE's flags, so this comes after) so that the operation is cancelled
 * and completes with -ECANCELED if it has not completed within ns.  ts is
 * the caller's storage and must stay valid until the SQEs are submitted;
 * the timeout's own completion is dropped.
 */
void aiol_loop_link_timeout(struct aiol_loop *loop, struct io_uring_sqe *sqe,
			    struct __kernel_timespec *ts, uint64_t ns);

/* Buffers: 4096-aligned, carved from the registered arena.  Returns NULL
 * when the arena has no free run of that size right now (the caller waits
 * with aiol_loop_buf_wait()) or when len exceeds the arena (never
 * satisfiable: check aiol_loop_buf_max()). */
void *aiol_loop_buf_alloc(struct aiol_loop *loop, size_t len);
void aiol_loop_buf_free(struct aiol_loop *loop, void *buf, size_t len);
size_t aiol_loop_buf_max(const struct aiol_loop *loop);
size_t aiol_loop_buf_used(const struct aiol_loop *loop);
/* Registered-buffer index for buf (0 for the arena) or -1 if buf is not in it. */
int aiol_loop_buf_index(const struct aiol_loop *loop, const void *buf);
/* Run w (deferred) once some buffer space has been freed. */
void aiol_loop_buf_wait(struct aiol_loop *loop, struct aiol_work *w);

/* Registered files: install fd in the ring's sparse file table.  Returns
 * the slot index or -errno (-ENOTSUP when the kernel has no sparse table,
 * in which case the caller uses the plain fd). */
int aiol_loop_file_register(struct aiol_loop *loop, int fd);
void aiol_loop_file_unregister(struct aiol_loop *loop, int slot);

#endif
