// SPDX-License-Identifier: MIT
/*
 * The read-modify-write step function (rmw.h).  Pure: it reads its
 * arguments, writes the caller's structs (and, for the copies, the
 * buffers it is given) and calls nothing else.
 */
#include <assert.h>
#include <string.h>

#include "rmw.h"

enum {
	PH_STEP = 0, /* plan the step at pos */
	PH_HEAD,     /* the first partial block has been read (or needs none) */
	PH_TAIL,     /* the last partial block has been read */
	PH_WRITTEN,  /* the step has been written */
	PH_READ,     /* the step has been read (read requests) */
};

static uint64_t down(uint64_t x, uint64_t a)
{
	assert(a && !(a & (a - 1)));
	return x & ~(a - 1);
}

static uint64_t up(uint64_t x, uint64_t a)
{
	assert(a && !(a & (a - 1)));
	return (x + a - 1) & ~(a - 1);
}

bool rmw_needed(uint64_t off, uint64_t len, const void *buf, uint64_t align, uint64_t mem_align)
{
	return ((off | len) & (align - 1)) || ((uintptr_t)buf & (mem_align - 1));
}

uint64_t rmw_bounce_len(const struct rmw_req *r)
{
	uint64_t whole = up(r->off + r->len, r->align) - down(r->off, r->align);
	uint64_t cap = r->chunk + r->align;

	return whole < cap ? whole : cap;
}

static enum rmw_kind set(struct rmw_io *io, uint8_t kind, uint64_t off, uint64_t len, uint64_t boff)
{
	io->kind = kind;
	io->off = off;
	io->len = len;
	io->boff = boff;
	io->pos = 0;
	io->copy_boff = 0;
	io->copy_len = 0;
	return kind;
}

enum rmw_kind rmw_next(const struct rmw_req *r, struct rmw_state *s, struct rmw_io *io)
{
	uint64_t a = r->align, end = r->off + r->len;
	uint64_t cur, as, ae;

	for (;;) {
		cur = r->off + s->pos;
		as = down(cur, a);
		ae = up(s->ce, a);
		switch (s->phase) {
		case PH_STEP:
			if (cur == end)
				return set(io, RMW_DONE, 0, 0, 0);
			s->ce = down(cur + r->chunk, a);
			if (s->ce > end)
				s->ce = end;
			assert(s->ce > cur);
			ae = up(s->ce, a);
			if (r->read) {
				s->phase = PH_READ;
				set(io, RMW_READ, as, ae - as, 0);
				io->pos = s->pos;
				io->copy_boff = cur - as;
				io->copy_len = s->ce - cur;
				return RMW_READ;
			}
			s->phase = PH_HEAD;
			if (cur != as)
				return set(io, RMW_READ, as, a, 0);
			continue; /* no head to read: on to the tail */
		case PH_HEAD:
			/* The tail block, unless the head read already covered it. */
			if (s->ce != ae && !(cur != as && ae - a == as)) {
				s->phase = PH_TAIL;
				return set(io, RMW_READ, ae - a, a, ae - a - as);
			}
			/* fall through */
		case PH_TAIL:
			s->phase = PH_WRITTEN;
			set(io, RMW_WRITE, as, ae - as, 0);
			io->pos = s->pos;
			io->copy_boff = cur - as;
			io->copy_len = s->ce - cur;
			return RMW_WRITE;
		case PH_WRITTEN:
		case PH_READ:
		default:
			s->pos += s->ce - cur;
			s->phase = PH_STEP;
			continue;
		}
	}
}

void rmw_copy_in(const struct rmw_io *io, void *bounce, const void *src)
{
	if (src)
		memcpy((char *)bounce + io->copy_boff, (const char *)src + io->pos, io->copy_len);
	else
		memset((char *)bounce + io->copy_boff, 0, io->copy_len);
}

void rmw_copy_out(const struct rmw_io *io, const void *bounce, void *dst)
{
	memcpy((char *)dst + io->pos, (const char *)bounce + io->copy_boff, io->copy_len);
}
