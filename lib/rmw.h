/* SPDX-License-Identifier: MIT */
/*
 * Read-modify-write as a step function: given a request's range and the
 * alignment the store needs, what to read into a bounce buffer, what to
 * copy in or out, and what to write, one primitive at a time.  No I/O and
 * no state outside the caller's structs: the engine does the primitives
 * and the copies, the unit tests run the same steps against memory.
 *
 * A request goes in steps of at most `chunk` bytes (so that a 64 MiB
 * request never needs 64 MiB of bounce):
 *   read:  read the aligned superset of the step into the bounce, copy
 *          the request's bytes out;
 *   write: read the partial first and last blocks of the step (only the
 *          first step can start and only the last can end mid-block), copy
 *          the request's data (or zeroes) in, write the aligned superset.
 * Offsets are the device's; the caller maps them onto the store.
 */
#ifndef AIOLOOP_RMW_H
#define AIOLOOP_RMW_H

#include <stdbool.h>
#include <stdint.h>

/* The request, as the step function sees it. */
struct rmw_req {
	uint64_t off, len; /* len > 0 */
	uint64_t align;	   /* power of two */
	uint64_t chunk;	   /* largest step, a multiple of align */
	bool read;	   /* else a write of data or of zeroes */
};

/* Progress; all zero before the first call. */
struct rmw_state {
	uint64_t pos; /* bytes of the request done */
	uint64_t ce;  /* end of the current step */
	uint8_t phase;
};

enum rmw_kind {
	RMW_DONE = 0, /* the request is complete */
	RMW_READ,     /* read [off, off + len) into bounce + boff */
	RMW_WRITE,    /* write [off, off + len) from bounce + boff */
};

/* One primitive of the plan.  copy_len bytes of the request at pos and of
 * the bounce at copy_boff are copied out after an RMW_READ completes (read
 * requests), or in (or zeroed) before an RMW_WRITE is issued. */
struct rmw_io {
	uint8_t kind;	   /* enum rmw_kind */
	uint64_t off, len; /* aligned to align */
	uint64_t boff;
	uint64_t pos, copy_boff, copy_len;
};

/* Does an I/O of [off, off + len) from buf need read-modify-write on a
 * store that needs align for offsets and lengths and mem_align for
 * buffers?  (buf is ignored for write-zeroes: pass NULL.) */
bool rmw_needed(uint64_t off, uint64_t len, const void *buf, uint64_t align, uint64_t mem_align);

/* Bytes of bounce the request needs: its aligned superset, at most one
 * step's (chunk + align). */
uint64_t rmw_bounce_len(const struct rmw_req *r);

/* The next primitive, after the previous one (if any) completed and its
 * copy was done.  Returns io->kind. */
enum rmw_kind rmw_next(const struct rmw_req *r, struct rmw_state *s, struct rmw_io *io);

/* The copies of io (RMW_WRITE: src NULL writes zeroes). */
void rmw_copy_in(const struct rmw_io *io, void *bounce, const void *src);
void rmw_copy_out(const struct rmw_io *io, const void *bounce, void *dst);

#endif
