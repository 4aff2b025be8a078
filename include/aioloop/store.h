/* SPDX-License-Identifier: MIT */
/*
 * The store interface: where the engine's I/O ends.  A store is an ops
 * table in the spirit of the ublk selftests' target ops and nbdkit's
 * plugin callbacks: it is opened once (by a function of its own, such as
 * aiol_file_store_open()), bound to each thread's loop as a store queue,
 * and given one primitive at a time per request (struct aiol_store_io):
 * read, write (FUA), flush, discard, zero, extents or a cache hint, at an
 * offset of the store.  The engine (engine.h) alone drives a request's
 * life: it validates, maps the device window onto store offsets, splits,
 * orders writes, does read-modify-write when a request is not aligned to
 * what the store needs (info.dio_align / dio_mem_align), writes zeroes by
 * hand when the store cannot zero, resubmits -EAGAIN and the rest of a
 * short transfer, and completes the request.  A store never drives the
 * loop and never sees a request.
 *
 * Completions come back on the queue's loop thread through io->done.  A
 * store completes from
 *   - the loop thread, from a ring completion (aiol_store_complete), or
 *     later on it when it learns the result inside submit()
 *     (aiol_store_complete_later);
 *   - any other thread, such as a library's callback thread
 *     (aiol_store_complete_post): the io goes through the loop's
 *     cross-thread inbox, an atomic stack drained when an eventfd that the
 *     ring reads fires.  A store whose library signals an eventfd of its
 *     own (librbd's image notification, Linux AIO) instead reads that
 *     eventfd with an SQE on the loop (aiol_loop_sqe) and completes from
 *     its completion, as the file store's aio backend does.
 * A store may also complete inside submit() (the file store's sync
 * backend); the engine copes, but such a store runs its own trampoline so
 * that completion and resubmission do not recurse.
 *
 * A stage (an encryption layer, say) is a store that owns a lower store:
 * it advertises its own alignment (so that the engine's read-modify-write
 * hands it whole sectors), transforms buffers on the way (a write is
 * encrypted into a bounce from the loop's arena, never in place; a read is
 * decrypted in place once the lower read completes) and submits its own
 * aiol_store_io to the lower store queue with its own done().
 *
 * Thread model: a struct aiol_store is shared by all threads (immutable
 * after open but for caps, changed with aiol_store_cap_clear(), and its
 * size, changed by refresh_size on the control path); a store
 * queue and its ios belong to one loop thread.
 */
#ifndef AIOLOOP_STORE_H
#define AIOLOOP_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "aioloop/engine.h"
#include "aioloop/loop.h"

/* Primitives (aiol_store_io.op).  Offsets and lengths are the store's. */
enum aiol_store_op {
	AIOL_SIO_READ = 0, /* res: bytes read (>= 0), a short read is resubmitted */
	AIOL_SIO_WRITE,	   /* res: bytes written; AIOL_F_FUA: durable when done */
	AIOL_SIO_FLUSH,	   /* what completed before is durable; no range */
	AIOL_SIO_DISCARD,  /* deallocate; the range then reads as zeroes */
	AIOL_SIO_ZERO,	   /* zero without writing data, keeping the allocation */
	AIOL_SIO_EXTENTS,  /* allocation of the range into ext[] (AIOL_EXT_*) */
	AIOL_SIO_CACHE,	   /* readahead hint */
};

/* Store capabilities (aiol_store.caps). */
#define AIOL_STORE_FUA (1u << 0) /* WRITE honours AIOL_F_FUA */
#define AIOL_STORE_FLUSH (1u << 1)
#define AIOL_STORE_DISCARD (1u << 2)   /* DISCARD works (and zeroes) */
#define AIOL_STORE_ZERO (1u << 3)      /* ZERO works */
#define AIOL_STORE_FAST_ZERO (1u << 4) /* DISCARD / ZERO are fast (no data written) */
#define AIOL_STORE_EXTENTS (1u << 5)   /* EXTENTS can tell holes */
#define AIOL_STORE_CACHE (1u << 6)     /* CACHE means something (a page cache) */
#define AIOL_STORE_ROTATIONAL (1u << 7)
/* READ / WRITE take AIOL_F_FIXED_BUF: the data is the queue loop's
 * registered buffer io->buf_index and io->buf an offset into it. */
#define AIOL_STORE_FIXED_BUF (1u << 8)
/* DISCARD leaves the range reading as anything but zeroes (a stage that
 * transforms the data): discard only, never used to write zeroes. */
#define AIOL_STORE_DISCARD_NOZERO (1u << 9)

struct aiol_store;
struct aiol_store_queue;

/*
 * One primitive.  The submitter (the engine, or a stage) fills op..ext_max
 * and done and keeps the struct alive until done() runs; the store owns
 * the fields after done while it holds the io, and may change nothing
 * else.  done() is called on the queue's loop thread with bytes moved
 * (READ/WRITE; fewer than len is a short transfer, resubmitted by the
 * engine for the rest), 0, or -errno.  -EOPNOTSUPP from DISCARD or ZERO
 * means the store cannot do it at all: the engine clears the capability
 * (aiol_store_cap_clear) and falls back.
 */
struct aiol_store_io {
	uint8_t op;	/* enum aiol_store_op */
	uint32_t flags; /* AIOL_F_FUA on WRITE; AIOL_F_FIXED_BUF on READ/WRITE */
	uint64_t off;
	uint64_t len;		 /* READ/WRITE: at most 1 GiB */
	void *buf;		 /* READ/WRITE; AIOL_F_FIXED_BUF: an offset, never dereferenced */
	uint16_t buf_index;	 /* AIOL_F_FIXED_BUF: registered-buffer index */
	struct aiol_extent *ext; /* EXTENTS: output, ext_max >= 1 */
	uint32_t ext_max;
	uint32_t ext_count; /* EXTENTS: filled by the store */
	void (*done)(struct aiol_store_io *io, int res);

	/* The store's while it holds the io. */
	struct aiol_event ev;  /* a ring completion */
	struct aiol_work work; /* aiol_store_complete_later / _post */
	int res;
	uint32_t tag;
	STAILQ_ENTRY(aiol_store_io) link;
};

struct aiol_store_ops {
	const char *name;
	/* Bind the store to the calling thread's loop: allocate a struct that
	 * embeds struct aiol_store_queue, set it up with
	 * aiol_store_queue_init() and return it.  At most depth ios are in
	 * flight at once.  Returns 0 or -errno (logged). */
	int (*queue_create)(struct aiol_store *st, struct aiol_loop *loop, unsigned int depth,
			    struct aiol_store_queue **out);
	/* Every io of sq has completed. */
	void (*queue_destroy)(struct aiol_store_queue *sq);
	/* Start io; its result comes back through io->done (see above). */
	void (*submit)(struct aiol_store_queue *sq, struct aiol_store_io *io);
	/* Optional: true while the store has something of its own (not an
	 * io's) on the loop ring, so that the queue may not be destroyed yet;
	 * the store calls aiol_store_queue_idle() when that ends. */
	bool (*busy)(const struct aiol_store_queue *sq);
	/* Control path: make everything written durable (blocking). */
	int (*sync)(struct aiol_store *st);
	/* Optional (NULL: the store cannot be resized): re-read the size of
	 * what the store shows (online resize) and store the new info.size
	 * and info.backing_size atomically.  The visible size is what the
	 * backing leaves after info.offset, at most sizelimit (non-zero: the
	 * new limit, kept for later calls; 0: the one in force), rounded
	 * down to info.dio_align.  Control path, one call at a time.
	 * Returns 0 with *size set, or -errno (logged; -ENOSPC: nothing
	 * would be visible). */
	int (*refresh_size)(struct aiol_store *st, uint64_t sizelimit, uint64_t *size);
	void (*close)(struct aiol_store *st);
};

/*
 * An opened store; each store embeds it.  info describes the device the
 * store shows (engine.h): size is the visible size and offset where it
 * starts among the store's offsets (the engine adds it to every
 * primitive), dio_align / dio_mem_align what READ and WRITE need (1: any),
 * read_only, block_size; info.caps is the engine's and left 0 here.
 * info.size and info.backing_size change only through refresh_size.
 */
struct aiol_store {
	const struct aiol_store_ops *ops;
	struct aiol_dev_info info;
	uint32_t caps;		    /* AIOL_STORE_*; read and cleared atomically */
	unsigned int discard_align; /* DISCARD/ZERO need whole units of this (>= 1) */
	unsigned int max_depth;	    /* most ios in flight per queue, 0: no limit */
};

/* A store bound to one loop; each store queue embeds it. */
struct aiol_store_queue {
	struct aiol_store *store;
	struct aiol_loop *loop;
	unsigned int depth;
	/* Set by the engine: called by aiol_store_queue_idle(). */
	void (*idle)(struct aiol_store_queue *sq);
	void *owner;
};

static inline void aiol_store_queue_init(struct aiol_store_queue *sq, struct aiol_store *st,
					 struct aiol_loop *loop, unsigned int depth)
{
	sq->store = st;
	sq->loop = loop;
	sq->depth = depth;
	sq->idle = NULL;
	sq->owner = NULL;
}

/* The store's busy() has turned false (loop thread). */
static inline void aiol_store_queue_idle(struct aiol_store_queue *sq)
{
	if (sq->idle)
		sq->idle(sq);
}

/* Complete io now, on the loop thread. */
static inline void aiol_store_complete(struct aiol_store_io *io, int res)
{
	io->done(io, res);
}

/* Complete io at the loop's next iteration (loop thread, e.g. inside
 * submit()). */
void aiol_store_complete_later(struct aiol_store_queue *sq, struct aiol_store_io *io, int res);
/* Complete io from any thread: it reaches the loop through its inbox.
 * After this call the io belongs to the loop thread again. */
void aiol_store_complete_post(struct aiol_store_queue *sq, struct aiol_store_io *io, int res);

static inline uint32_t aiol_store_caps(const struct aiol_store *st)
{
	return __atomic_load_n(&st->caps, __ATOMIC_RELAXED);
}

/* Clear capability bits (any thread); returns the bits that were set. */
uint32_t aiol_store_cap_clear(struct aiol_store *st, uint32_t caps);

/*
 * The file store: a regular file or block device, through one of four
 * backends (opts->engine: io_uring, Linux AIO, a thread pool, or
 * synchronous calls), probed at open (size, direct I/O and its alignment,
 * fallocate modes; see lib/probe.c).  Returns 0 or -errno, with a one-line
 * message logged.
 */
int aiol_file_store_open(const char *path, const struct aiol_open_opts *opts,
			 struct aiol_store **out);

/* Does name name a Ceph RBD image (rbd:...) rather than a file? */
static inline bool aiol_rbd_name(const char *name)
{
	return name[0] == 'r' && name[1] == 'b' && name[2] == 'd' && name[3] == ':';
}

/*
 * The RBD store: an image of a Ceph cluster, named
 * rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:conf=PATH][:id=USER][:OPTION=VALUE]...
 * (qemu's syntax; a snapshot is read-only), through librbd (lib/rbd.c).
 * Connects and opens the image (blocking, control path).  Returns 0 or
 * -errno with a one-line message logged; -ENOTSUP when aioloop was built
 * without librbd.
 */
int aiol_rbd_store_open(const char *name, const struct aiol_open_opts *opts,
			struct aiol_store **out);

#endif
