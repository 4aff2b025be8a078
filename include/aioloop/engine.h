/* SPDX-License-Identifier: MIT */
/*
 * The aioloop engine: a block device's operations on a backing regular file
 * or block device, submitted asynchronously and completed by callback on
 * the submitting thread's event loop (include/aioloop/loop.h).
 *
 * Objects:
 *   struct aiol_dev   - an opened store (aioloop/store.h; the file store
 *                       for aiol_dev_open) with its geometry.  Immutable
 *                       after open; shared by all threads.
 *   struct aiol_queue - a dev bound to one thread's loop with one store
 *                       queue (for files: io_uring, Linux AIO, thread pool
 *                       or synchronous).  Used only from that thread.
 *   struct aiol_req   - one operation, caller-owned until its done()
 *                       callback runs.
 *
 * Every function returns 0 or -errno; nothing reads errno as a contract and
 * nothing is global.
 */
#ifndef AIOLOOP_ENGINE_H
#define AIOLOOP_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aioloop/loop.h"

enum aiol_engine {
	AIOL_ENGINE_URING = 0,	/* io_uring (default) */
	AIOL_ENGINE_AIO,	/* Linux AIO, io_submit, O_DIRECT */
	AIOL_ENGINE_THREADS,	/* pool of threads doing pread/pwrite */
	AIOL_ENGINE_SYNC,	/* one request at a time, in order: the baseline */
	AIOL_ENGINE_RBD,	/* a Ceph RBD image through librbd (not chosen: named) */
};

enum aiol_direct {
	AIOL_DIRECT_AUTO = 0,	/* O_DIRECT if it opens, else buffered (said loudly) */
	AIOL_DIRECT_ON,		/* O_DIRECT or fail */
	AIOL_DIRECT_OFF,	/* buffered */
};

struct aiol_crypt_opts;

struct aiol_open_opts {
	uint64_t offset;	/* bytes into the backing, like lo_offset */
	uint64_t sizelimit;	/* bytes visible, 0: to the end (lo_sizelimit) */
	bool read_only;
	enum aiol_direct direct;
	unsigned int block_size;	/* logical block size 512|4096, 0: auto */
	enum aiol_engine engine;
	unsigned int threads;	/* threads engine: pool size, 0: 4 */
	/* Encryption (aioloop/crypt.h): the file store under the
	 * encryption stage; NULL: none. */
	const struct aiol_crypt_opts *crypt;
	/* Optional: called when the store learns that what it shows has
	 * changed size under it (the RBD store: another client resized the
	 * image; a file's size is not watched).  It runs on a thread of the
	 * store's, never a loop thread, one call at a time, and may block:
	 * the callee may call aiol_dev_refresh_size() there, or hand the
	 * work to its control thread.  Not called once aiol_dev_close() has
	 * begun. */
	void (*on_resize)(void *arg);
	void *resize_arg;
};

/* Capabilities of an opened dev (bits of aiol_dev_info.caps). */
#define AIOL_CAP_DISCARD	(1u << 0)	/* punch hole works */
#define AIOL_CAP_WRITE_ZEROES	(1u << 1)	/* zero range or punch works */
#define AIOL_CAP_FAST_ZERO	(1u << 2)	/* write-zeroes can be done without writing */
#define AIOL_CAP_FLUSH		(1u << 3)
#define AIOL_CAP_FUA		(1u << 4)
#define AIOL_CAP_BLOCK_STATUS	(1u << 5)	/* holes can be reported */
#define AIOL_CAP_ROTATIONAL	(1u << 6)

struct aiol_dev_info {
	const char *path;
	uint64_t size;		/* visible size in bytes (aiol_dev_refresh_size
				 * changes it: read it with __atomic_load_n) */
	uint64_t offset;	/* offset into the backing */
	uint64_t backing_size;
	unsigned int block_size;	/* logical block size */
	unsigned int dio_align;	/* offset/length alignment direct I/O needs (1 if buffered) */
	unsigned int dio_mem_align;	/* buffer alignment direct I/O needs (1 if buffered) */
	bool direct;		/* O_DIRECT in effect */
	bool read_only;
	bool is_blockdev;
	enum aiol_engine engine;
	uint32_t caps;		/* AIOL_CAP_* */
};

struct aiol_dev;
struct aiol_queue;

/* Open and probe path: a file or block device, or a Ceph RBD image named
 * rbd:POOL/IMAGE[@SNAP][:conf=PATH][:id=USER] (aioloop/store.h).  On failure a one-line message naming what was wrong is
 * logged (aioloop/log.h) and -errno returned; nothing is written. */
int aiol_dev_open(const char *path, const struct aiol_open_opts *opts,
		  struct aiol_dev **out);
/* Open a dev on a store opened by the caller (aioloop/store.h), which the
 * dev then owns: it is closed by aiol_dev_close(), or here on failure. */
struct aiol_store;
int aiol_dev_open_store(struct aiol_store *st, struct aiol_dev **out);
void aiol_dev_close(struct aiol_dev *dev);
const struct aiol_dev_info *aiol_dev_info(const struct aiol_dev *dev);
/* fdatasync the backing (control path, blocking). */
int aiol_dev_sync(struct aiol_dev *dev);
/*
 * Online resize: the store re-reads its size (its refresh_size op; the file
 * store: a file's st_size, a block device's BLKGETSIZE64; the RBD store:
 * the image's; the encryption stage: the lower store's, in whole
 * encryption sectors) and the visible size becomes what it leaves after the offset, at most the size limit
 * (sizelimit non-zero: the new limit, kept for later calls; 0: the one in
 * force), rounded down to the direct I/O alignment as at open.  Control
 * path, one call at a time from any thread; requests validated after it
 * returns see the new size.  0 with *size_out set, or -errno (-EOPNOTSUPP:
 * a store that cannot change its size; -ENOSPC: nothing would be
 * visible).  The backing is never changed.
 */
int aiol_dev_refresh_size(struct aiol_dev *dev, uint64_t sizelimit, uint64_t *size_out);
/* Whether dev's queues can read and write a registered buffer they never
 * map (AIOL_F_FIXED_BUF): a store that takes it (AIOL_STORE_FIXED_BUF: the
 * file store on the io_uring engine), and no request whose offset and
 * length are multiples of len_align needs a read-modify-write (which would
 * bounce through memory of ours). */
bool aiol_dev_fixed_buf_ok(const struct aiol_dev *dev, unsigned int len_align);

const char *aiol_engine_name(enum aiol_engine e);
/* Parse "uring", "aio", "threads", "sync"; -EINVAL if unknown. */
int aiol_engine_parse(const char *s, enum aiol_engine *out);

enum aiol_op {
	AIOL_OP_READ = 0,
	AIOL_OP_WRITE,
	AIOL_OP_FLUSH,		/* fdatasync */
	AIOL_OP_DISCARD,	/* punch hole */
	AIOL_OP_WRITE_ZEROES,
	AIOL_OP_BLOCK_STATUS,	/* allocation extents */
	AIOL_OP_CACHE,		/* readahead hint */
};

/* Request flags. */
#define AIOL_F_FUA	 (1u << 0)	/* write: durable before completion (RWF_DSYNC) */
#define AIOL_F_NO_UNMAP	 (1u << 1)	/* write-zeroes: keep allocation (ZERO_RANGE) */
#define AIOL_F_FAST_ONLY (1u << 2)	/* write-zeroes: -ENOTSUP rather than writing zeroes */
/* read/write: the data is the loop ring's registered buffer buf_index (one
 * the kernel installed, such as a ublk request's pages) and buf is the
 * offset into it, never dereferenced.  Only on a queue for which
 * aiol_dev_fixed_buf_ok() says so; otherwise done() gets -EINVAL. */
#define AIOL_F_FIXED_BUF (1u << 3)

/* Extent flags of block status (same values as NBD base:allocation). */
#define AIOL_EXT_HOLE	(1u << 0)
#define AIOL_EXT_ZERO	(1u << 1)

struct aiol_extent {
	uint64_t len;
	uint32_t flags;
};

struct aiol_req;
typedef void (*aiol_done_fn)(struct aiol_req *req, int res);

/*
 * One operation.  The caller fills the public part, keeps the struct (and
 * buf / ext) alive until done() is called, and never touches _priv.
 * res passed to done() is 0 on success (the whole length was transferred)
 * or -errno.  done() runs on the queue's loop thread, never inside
 * aiol_submit().
 */
struct aiol_req {
	uint8_t op;		/* enum aiol_op */
	uint32_t flags;		/* AIOL_F_* */
	uint64_t off;		/* offset in the visible device */
	uint64_t len;
	void *buf;		/* READ/WRITE data; any alignment */
	uint16_t buf_index;	/* AIOL_F_FIXED_BUF: registered-buffer index */
	struct aiol_extent *ext;	/* BLOCK_STATUS: output array */
	uint32_t ext_max;	/* BLOCK_STATUS: capacity of ext (>= 1) */
	uint32_t ext_count;	/* BLOCK_STATUS: filled by the engine */
	aiol_done_fn done;
	void *user;		/* for the caller */

	/* Engine-private state. */
	union {
		uint64_t u64[48];
		void *ptr[48];
	} _priv;
};

struct aiol_queue_opts {
	unsigned int depth;	/* max ops in flight on the backend; 0: 128 */
};

/* Bind dev to the calling thread's loop.  Returns 0 or -errno. */
int aiol_queue_create(struct aiol_dev *dev, struct aiol_loop *loop,
		      const struct aiol_queue_opts *opts, struct aiol_queue **out);
/* Destroy; the caller has waited for all its requests to complete. */
void aiol_queue_destroy(struct aiol_queue *q);
struct aiol_dev *aiol_queue_dev(struct aiol_queue *q);
struct aiol_loop *aiol_queue_loop(struct aiol_queue *q);
unsigned int aiol_queue_inflight(const struct aiol_queue *q);

/*
 * Submit req.  The range is checked (overflow-safe) against the visible
 * size, the op against read-only and the caps; a request that fails those
 * checks still completes through done() with -EINVAL (read past end),
 * -ENOSPC (write past end), -EPERM (read-only) or -EOPNOTSUPP.
 * Requests beyond the queue depth or waiting for bounce memory are queued
 * inside the engine.  Always returns 0 once req has been accepted for
 * completion; -errno only for programming errors (NULL done).
 */
int aiol_submit(struct aiol_queue *q, struct aiol_req *req);

#endif
