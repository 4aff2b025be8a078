// SPDX-License-Identifier: MIT
/*
 * The per-thread event loop (aioloop/loop.h): an io_uring, a list of
 * deferred work, a lock-free inbox for completions posted by other threads
 * (woken through an eventfd that the ring itself reads), timers, and the
 * thread's buffer arena registered as fixed buffer 0 (of a sparse table
 * whose other slots stay empty for buffers the kernel installs, when the
 * loop is created with kernel_bufs).
 *
 * The arena is mapped at its full size (MAP_NORESERVE: untouched pages
 * cost nothing) but used from its start as demand grows: the allocator
 * works inside a prefix of ARENA_FIRST bytes (1 MiB) and doubles it only
 * when no free run fits there, and only the prefix is registered with the
 * ring (registration pins its pages and charges them to RLIMIT_MEMLOCK).  A
 * grown prefix replaces the registration of buffer 0 alone (the kernel's
 * slots of a sparse table are left as they are): in-flight fixed I/O
 * keeps the old one until it completes, and the new one starts at the same
 * address, so every fixed buffer handed out stays valid.
 *
 * Before it sleeps, a loop created with poll_us polls its ring for a
 * window that the policy of spin.h learns from the gaps between
 * completions, while requests are in flight (aiol_loop_inflight()), or,
 * with many in flight, sleeps for a batch of them.
 *
 * Thread model: everything but aiol_loop_post() runs on the owning thread.
 * aiol_loop_post() pushes onto an atomic stack and writes the eventfd.
 */
#include <assert.h>
#include <errno.h>
#include <liburing.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "aioloop/loop.h"
#include "spin.h"

#define ARENA_PAGE 4096u
/* The arena's prefix in use (and registered) at first: what a worker
 * pins before its first client.  A server has a worker per CPU, so this
 * is the idle RSS it costs per CPU; QD32 of 4 KiB takes 128 KiB of it. */
#define ARENA_FIRST (1u << 20)
#define FILE_SLOTS 64
/* A sched_yield() in a poll that takes longer than this gave the CPU to
 * someone else for a time slice, not to a client for a moment. */
#define YIELD_SLOW_NS 200000u

struct aiol_loop {
	struct io_uring ring;
	unsigned int submit_batch;	/* see aiol_loop_opts */
	unsigned int poll_us;		/* see aiol_loop_opts */
	bool taskrun_flag;		/* the kernel flags pending task work */
	bool deferred;			/* DEFER_TASKRUN: batched wake-ups */
	struct aiol_spin spin;		/* adaptive polling (spin.h) */
	unsigned int inflight;		/* see aiol_loop_inflight() */
	/* deferred work, FIFO */
	STAILQ_HEAD(, aiol_work) work;
	/* cross-thread inbox (LIFO stack, reversed when drained) */
	_Atomic(struct aiol_work *) inbox;
	/* aiol_loop_post() calls still between their push and their eventfd
	 * write: the loop may run the work they pushed (woken by an earlier
	 * write) and its owner destroy it before they are done with it. */
	atomic_uint posters;
	int efd;
	uint64_t efd_val;
	struct aiol_event efd_ev;
	bool efd_armed;
	/* buffer arena */
	uint8_t *arena;
	size_t arena_bytes;
	size_t npages;
	uint64_t *bitmap;	/* 1 = page in use */
	size_t hint;		/* next-fit start page */
	size_t limit;		/* pages of the prefix the allocator uses */
	size_t reg_pages;	/* pages registered as buffer 0 */
	bool reg_frozen;	/* the ring refused a larger registration */
	size_t used;
	bool arena_registered;
	STAILQ_HEAD(, aiol_work) buf_waiters;
	/* registered files */
	bool files_sparse;
	int file_used[FILE_SLOTS];
};

static void loop_arm_efd(struct aiol_loop *loop);

static void efd_complete(struct aiol_event *ev, int res, unsigned int flags)
{
	struct aiol_loop *loop = aiol_container_of(ev, struct aiol_loop, efd_ev);
	struct aiol_work *w, *rev = NULL;

	(void)res;
	(void)flags;
	loop->efd_armed = false;
	w = atomic_exchange_explicit(&loop->inbox, NULL, memory_order_acquire);
	while (w) {		/* reverse into FIFO order */
		struct aiol_work *n = STAILQ_NEXT(w, link);
		STAILQ_NEXT(w, link) = rev;
		rev = w;
		w = n;
	}
	while (rev) {
		struct aiol_work *n = STAILQ_NEXT(rev, link);
		rev->queued = false;
		aiol_loop_defer(loop, rev);
		rev = n;
	}
	loop_arm_efd(loop);
}

static void loop_arm_efd(struct aiol_loop *loop)
{
	struct io_uring_sqe *sqe;

	if (loop->efd_armed || loop->efd < 0)
		return;
	sqe = aiol_loop_sqe(loop, &loop->efd_ev);
	io_uring_prep_read(sqe, loop->efd, &loop->efd_val, sizeof(loop->efd_val), 0);
	loop->efd_armed = true;
}

int aiol_loop_create(const struct aiol_loop_opts *opts, struct aiol_loop **out)
{
	struct aiol_loop *loop;
	struct io_uring_params p, pp;
	unsigned int poll_flags;
	unsigned int entries = opts && opts->entries ? opts->entries : 256;
	size_t arena = opts && opts->arena_bytes ? opts->arena_bytes : 64u << 20;
	struct iovec iov;
	int ret;

	arena = (arena + ARENA_PAGE - 1) & ~(size_t)(ARENA_PAGE - 1);
	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	loop->efd = -1;
	STAILQ_INIT(&loop->work);
	STAILQ_INIT(&loop->buf_waiters);
	loop->submit_batch = opts ? opts->submit_batch : 0;
	loop->poll_us = opts ? opts->poll_us : 0;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | (opts ? opts->flags : 0);
	p.cq_entries = entries * 4;
	/* A polling thread runs its task work when it looks, not on an
	 * interrupt: no IPI for every completion, and the kernel says when
	 * there is task work to run (5.19+).  Better (6.1+), task work is
	 * deferred until the thread asks for completions, and a thread that
	 * sleeps for n of them is woken once, not n times; that needs a
	 * single issuer, the thread that creates the loop (the loop's own).
	 * Older kernels: the best of these they take. */
	poll_flags = loop->poll_us ? IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG : 0;
	ret = -EINVAL;
	if (poll_flags) {
		pp = p;
		pp.flags |= poll_flags | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
		ret = io_uring_queue_init_params(entries, &loop->ring, &pp);
		loop->deferred = ret == 0;
	}
	if (ret == -EINVAL && poll_flags) {
		pp = p;
		pp.flags |= poll_flags;
		ret = io_uring_queue_init_params(entries, &loop->ring, &pp);
	}
	loop->taskrun_flag = poll_flags && ret == 0;
	if (ret == -EINVAL)
		ret = io_uring_queue_init_params(entries, &loop->ring, &p);
	if (ret < 0) {
		aiol_err("io_uring_queue_init: %s", strerror(-ret));
		goto err_free;
	}
	loop->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->efd < 0) {
		ret = -errno;
		aiol_err("eventfd: %m");
		goto err_ring;
	}
	loop->efd_ev.fn = efd_complete;
	aiol_spin_init(&loop->spin, loop->poll_us, loop->deferred);

	loop->arena_bytes = arena;
	loop->npages = arena / ARENA_PAGE;
	loop->arena = mmap(NULL, arena, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (loop->arena == MAP_FAILED) {
		ret = -errno;
		aiol_err("mmap of a %zu-byte buffer arena: %m", arena);
		goto err_efd;
	}
	loop->bitmap = calloc((loop->npages + 63) / 64, sizeof(uint64_t));
	if (!loop->bitmap) {
		ret = -ENOMEM;
		goto err_arena;
	}
	loop->limit =
	    ARENA_FIRST / ARENA_PAGE < loop->npages ? ARENA_FIRST / ARENA_PAGE : loop->npages;
	iov.iov_base = loop->arena;
	iov.iov_len = loop->limit * ARENA_PAGE;
	if (opts && opts->kernel_bufs) {
		/* A sparse table with the arena's prefix in slot 0 (grown in
		 * place there, see arena_grow): the caller needs the other
		 * slots, so failing here is an error. */
		ret = io_uring_register_buffers_sparse(&loop->ring, 1 + opts->kernel_bufs);
		if (ret == 0) {
			ret = io_uring_register_buffers_update_tag(&loop->ring, 0, &iov, NULL, 1);
			ret = ret == 1 ? 0 : ret < 0 ? ret : -EIO;
		}
		if (ret < 0) {
			aiol_err("sparse buffer table of %u slots: %s", 1 + opts->kernel_bufs,
				 strerror(-ret));
			goto err_bitmap;
		}
	} else {
		ret = io_uring_register_buffers(&loop->ring, &iov, 1);
	}
	loop->arena_registered = ret == 0;
	loop->reg_pages = ret == 0 ? loop->limit : 0;
	if (ret < 0)
		aiol_warn("buffer arena of %zu bytes not registered with the ring (%s): data I/O "
			  "goes without fixed buffers",
			  iov.iov_len, strerror(-ret));

	ret = io_uring_register_files_sparse(&loop->ring, FILE_SLOTS);
	loop->files_sparse = ret == 0;

	loop_arm_efd(loop);
	*out = loop;
	return 0;

err_bitmap:
	free(loop->bitmap);
err_arena:
	munmap(loop->arena, arena);
err_efd:
	close(loop->efd);
err_ring:
	io_uring_queue_exit(&loop->ring);
err_free:
	free(loop);
	return ret;
}

void aiol_loop_destroy(struct aiol_loop *loop)
{
	if (!loop)
		return;
	/* A poster whose work already ran may still be writing the eventfd. */
	while (atomic_load_explicit(&loop->posters, memory_order_acquire))
		sched_yield();
	io_uring_queue_exit(&loop->ring);
	if (loop->efd >= 0)
		close(loop->efd);
	munmap(loop->arena, loop->arena_bytes);
	free(loop->bitmap);
	free(loop);
}

struct io_uring *aiol_loop_ring(struct aiol_loop *loop)
{
	return &loop->ring;
}

struct io_uring_sqe *aiol_loop_sqe(struct aiol_loop *loop, struct aiol_event *ev)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&loop->ring)))
		io_uring_submit(&loop->ring);
	/* Reset fields that io_uring_prep_* leaves alone. */
	sqe->flags = 0;
	sqe->ioprio = 0;
	sqe->personality = 0;
	sqe->file_index = 0;
	sqe->addr3 = 0;
	sqe->__pad2[0] = 0;
	io_uring_sqe_set_data(sqe, ev);
	return sqe;
}

void aiol_loop_defer(struct aiol_loop *loop, struct aiol_work *w)
{
	if (w->queued)
		return;
	w->queued = true;
	STAILQ_INSERT_TAIL(&loop->work, w, link);
}

void aiol_loop_post(struct aiol_loop *loop, struct aiol_work *w)
{
	struct aiol_work *head = atomic_load_explicit(&loop->inbox, memory_order_relaxed);
	uint64_t one = 1;

	atomic_fetch_add_explicit(&loop->posters, 1, memory_order_seq_cst);
	do {
		STAILQ_NEXT(w, link) = head;
	} while (!atomic_compare_exchange_weak_explicit(&loop->inbox, &head, w,
							memory_order_release,
							memory_order_relaxed));
	if (write(loop->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		aiol_err("eventfd write: %m");
	atomic_fetch_sub_explicit(&loop->posters, 1, memory_order_release);
}

/* Submit now when submit_batch SQEs are ready (see aiol_loop_opts). */
static void submit_if_batch(struct aiol_loop *loop)
{
	if (loop->submit_batch && io_uring_sq_ready(&loop->ring) >= loop->submit_batch)
		io_uring_submit(&loop->ring);
}

/*
 * Run the work queued before this call.  Work deferred while it runs waits
 * for the next iteration ("at the next iteration", loop.h): otherwise a
 * callback that re-queues itself (a done() that resubmits to the sync
 * engine, which completes through aiol_loop_defer) would keep
 * aiol_loop_run_once() from ever returning and starve the ring.
 */
static int run_work(struct aiol_loop *loop)
{
	struct aiol_work *w, *next;
	int n = 0;

	w = STAILQ_FIRST(&loop->work);
	STAILQ_INIT(&loop->work);
	for (; w; w = next) {
		next = STAILQ_NEXT(w, link);
		w->queued = false;
		STAILQ_NEXT(w, link) = NULL;
		w->fn(w);
		n++;
		submit_if_batch(loop);
	}
	return n;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void aiol_loop_inflight(struct aiol_loop *loop, int delta)
{
	assert(delta >= 0 || loop->inflight >= (unsigned int)-delta);
	loop->inflight += delta;
}

/*
 * Busy-poll for a completion until now_ns() reaches end.  A thread that
 * sleeps in io_uring_enter() is woken by an interrupt, a wake-up and a
 * context switch for every completion; on a virtual machine each costs
 * tens of microseconds, as much as a fast disk's service time.  Returns
 * true when a CQE is ready; false when end passed without one, or when a
 * yield gave the CPU away for longer than YIELD_SLOW_NS (a CQE may be
 * ready then: the sleep that follows returns at once).
 */
static bool loop_poll(struct aiol_loop *loop, uint64_t end)
{
	uint64_t t;

	io_uring_submit(&loop->ring);
	for (;;) {
		if (io_uring_cq_ready(&loop->ring))
			return true;
		if (!loop->taskrun_flag ||
		    (IO_URING_READ_ONCE(*loop->ring.sq.kflags) & IORING_SQ_TASKRUN)) {
			/* Task work (completions not yet posted) runs on entry. */
			io_uring_get_events(&loop->ring);
			if (io_uring_cq_ready(&loop->ring))
				return true;
		}
		t = now_ns();
		if (t >= end)
			return false;
		sched_yield();
		/* Another thread had this CPU for a long while: it is wanted
		 * elsewhere, and a completion may have waited for us all that
		 * time.  Polling does not pay here: give up, count a miss. */
		if (now_ns() - t > YIELD_SLOW_NS)
			return false;
	}
}

/* Poll before sleeping, if the policy says it pays now.  Returns true when
 * a CQE is ready. */
static bool loop_maybe_poll(struct aiol_loop *loop)
{
	uint64_t now = now_ns();
	uint64_t w = aiol_spin_decide(&loop->spin, loop->inflight, now);
	bool hit;

	if (!w)
		return false;
	hit = loop_poll(loop, now + w);
	aiol_spin_outcome(&loop->spin, hit);
	return hit;
}

/* Sleep for a completion, or for a batch of them when the policy says so
 * (a timeout of poll_us bounds the wait for the batch). */
static int loop_sleep(struct aiol_loop *loop)
{
	unsigned int nr = aiol_spin_batch(&loop->spin, loop->inflight);
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;

	if (nr <= 1)
		return io_uring_submit_and_wait(&loop->ring, 1);
	ts.tv_sec = 0;
	ts.tv_nsec = (long long)loop->spin.cap_ns;
	return io_uring_submit_and_wait_timeout(&loop->ring, &cqe, nr, &ts, NULL);
}

int aiol_loop_run_once(struct aiol_loop *loop, bool wait)
{
	struct io_uring_cqe *cqe;
	int ret, n = 0;

	if (wait && STAILQ_EMPTY(&loop->work) && loop->poll_us && loop_maybe_poll(loop))
		ret = 0;
	else if (wait && STAILQ_EMPTY(&loop->work))
		ret = loop_sleep(loop);
	else
		ret = io_uring_submit(&loop->ring);
	if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME)
		return ret;

	while (io_uring_peek_cqe(&loop->ring, &cqe) == 0) {
		struct aiol_event *ev = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		unsigned int flags = cqe->flags;

		io_uring_cqe_seen(&loop->ring, cqe);
		if (ev)
			ev->fn(ev, res, flags);
		n++;
		submit_if_batch(loop);
	}
	if (n && loop->poll_us)
		aiol_spin_seen(&loop->spin, now_ns());
	n += run_work(loop);
	return n;
}

/* ---- timers ---- */

static void timer_cqe(struct aiol_event *ev, int res, unsigned int flags)
{
	struct aiol_timer *t = aiol_container_of(ev, struct aiol_timer, ev);

	(void)flags;
	t->armed = false;
	t->fn(t, res == -ETIME ? 0 : res);
}

static void ns_to_ts(struct __kernel_timespec *ts, uint64_t ns)
{
	ts->tv_sec = (long long)(ns / 1000000000u);
	ts->tv_nsec = (long long)(ns % 1000000000u);
}

void aiol_timer_start(struct aiol_loop *loop, struct aiol_timer *t, uint64_t ns)
{
	struct io_uring_sqe *sqe;

	assert(!t->armed);
	ns_to_ts(&t->ts, ns);
	t->ev.fn = timer_cqe;
	t->armed = true;
	sqe = aiol_loop_sqe(loop, &t->ev);
	io_uring_prep_timeout(sqe, &t->ts, 0, 0);
}

void aiol_timer_cancel(struct aiol_loop *loop, struct aiol_timer *t)
{
	struct io_uring_sqe *sqe;

	if (!t->armed)
		return;
	sqe = aiol_loop_sqe(loop, NULL);
	io_uring_prep_timeout_remove(sqe, (__u64)(uintptr_t)&t->ev, 0);
}

bool aiol_timer_armed(const struct aiol_timer *t)
{
	return t->armed;
}

void aiol_loop_sq_reserve(struct aiol_loop *loop, unsigned int n)
{
	if (io_uring_sq_space_left(&loop->ring) < n)
		io_uring_submit(&loop->ring);
}

void aiol_loop_link_timeout(struct aiol_loop *loop, struct io_uring_sqe *sqe,
			    struct __kernel_timespec *ts, uint64_t ns)
{
	ns_to_ts(ts, ns);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_prep_link_timeout(aiol_loop_sqe(loop, NULL), ts, 0);
}

/* ---- buffer arena ---- */

static bool page_used(const struct aiol_loop *loop, size_t i)
{
	return loop->bitmap[i / 64] & (1ull << (i % 64));
}

static void mark_pages(struct aiol_loop *loop, size_t first, size_t n, bool used)
{
	for (size_t i = first; i < first + n; i++) {
		if (used)
			loop->bitmap[i / 64] |= 1ull << (i % 64);
		else
			loop->bitmap[i / 64] &= ~(1ull << (i % 64));
	}
}

/* First free run of n pages in [from, to); returns its start or SIZE_MAX. */
static size_t find_run(const struct aiol_loop *loop, size_t n, size_t from, size_t to)
{
	size_t run = 0;

	for (size_t i = from; i < to; i++) {
		if ((i % 64) == 0 && loop->bitmap[i / 64] == ~0ull && i + 64 <= to) {
			run = 0;
			i += 63;
			continue;
		}
		if (page_used(loop, i)) {
			run = 0;
			continue;
		}
		if (++run == n)
			return i + 1 - n;
	}
	return SIZE_MAX;
}

/*
 * No run of n free pages in the prefix: double it (at least n more pages,
 * at most the whole arena) and register the grown prefix as buffer 0.  If
 * the ring refuses (RLIMIT_MEMLOCK), buffers past the registered part go
 * without fixed I/O.
 */
static void arena_grow(struct aiol_loop *loop, size_t n)
{
	size_t want = loop->limit * 2 > loop->limit + n ? loop->limit * 2 : loop->limit + n;
	struct iovec iov;
	int ret;

	if (want > loop->npages)
		want = loop->npages;
	loop->limit = want;
	if (!loop->arena_registered || loop->reg_frozen)
		return;
	iov.iov_base = loop->arena;
	iov.iov_len = want * ARENA_PAGE;
	ret = io_uring_register_buffers_update_tag(&loop->ring, 0, &iov, NULL, 1);
	if (ret >= 0) {
		loop->reg_pages = want;
		return;
	}
	aiol_warn("buffer arena grown to %zu bytes but registered with the ring only up to %zu "
		  "(%s): buffers past it go without fixed buffers",
		  iov.iov_len, loop->reg_pages * ARENA_PAGE, strerror(-ret));
	loop->reg_frozen = true; /* said once; never tried again */
}

void *aiol_loop_buf_alloc(struct aiol_loop *loop, size_t len)
{
	size_t n = (len + ARENA_PAGE - 1) / ARENA_PAGE, start;

	if (n == 0)
		n = 1;
	if (n > loop->npages || loop->used + n * ARENA_PAGE > loop->arena_bytes)
		return NULL;
	for (;;) {
		start = find_run(loop, n, loop->hint, loop->limit);
		if (start == SIZE_MAX)
			start = find_run(loop, n, 0, loop->limit);
		if (start != SIZE_MAX)
			break;
		if (loop->limit == loop->npages)
			return NULL;
		arena_grow(loop, n);
	}
	mark_pages(loop, start, n, true);
	loop->hint = start + n < loop->limit ? start + n : 0;
	loop->used += n * ARENA_PAGE;
	return loop->arena + start * ARENA_PAGE;
}

void aiol_loop_buf_free(struct aiol_loop *loop, void *buf, size_t len)
{
	size_t n = (len + ARENA_PAGE - 1) / ARENA_PAGE;
	size_t start;

	if (!buf)
		return;
	if (n == 0)
		n = 1;
	start = (size_t)((uint8_t *)buf - loop->arena) / ARENA_PAGE;
	mark_pages(loop, start, n, false);
	loop->used -= n * ARENA_PAGE;
	/* Wake every waiter: each retries its allocation and re-queues itself. */
	while (!STAILQ_EMPTY(&loop->buf_waiters)) {
		struct aiol_work *w = STAILQ_FIRST(&loop->buf_waiters);

		STAILQ_REMOVE_HEAD(&loop->buf_waiters, link);
		w->queued = false;
		aiol_loop_defer(loop, w);
	}
}

void aiol_loop_buf_wait(struct aiol_loop *loop, struct aiol_work *w)
{
	if (w->queued)
		return;
	w->queued = true;
	STAILQ_INSERT_TAIL(&loop->buf_waiters, w, link);
}

size_t aiol_loop_buf_max(const struct aiol_loop *loop)
{
	return loop->arena_bytes;
}

size_t aiol_loop_buf_used(const struct aiol_loop *loop)
{
	return loop->used;
}

int aiol_loop_buf_index(const struct aiol_loop *loop, const void *buf)
{
	const uint8_t *p = buf;

	if (!loop->arena_registered || p < loop->arena ||
	    p >= loop->arena + loop->reg_pages * ARENA_PAGE)
		return -1;
	return 0;
}

/* ---- registered files ---- */

int aiol_loop_file_register(struct aiol_loop *loop, int fd)
{
	int ret;

	if (!loop->files_sparse)
		return -ENOTSUP;
	for (int i = 0; i < FILE_SLOTS; i++) {
		if (loop->file_used[i])
			continue;
		ret = io_uring_register_files_update(&loop->ring, i, &fd, 1);
		if (ret < 0)
			return ret;
		loop->file_used[i] = 1;
		return i;
	}
	return -ENOSPC;
}

void aiol_loop_file_unregister(struct aiol_loop *loop, int slot)
{
	int fd = -1;

	if (slot < 0 || slot >= FILE_SLOTS || !loop->file_used[slot])
		return;
	io_uring_register_files_update(&loop->ring, slot, &fd, 1);
	loop->file_used[slot] = 0;
}
