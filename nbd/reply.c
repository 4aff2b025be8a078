// SPDX-License-Identifier: MIT
/*
 * Reply encoding for the transmission phase (see reply.h): simple
 * replies, structured chunks (ERROR, OFFSET_DATA, OFFSET_HOLE,
 * BLOCK_STATUS in both header forms) as iovecs over caller memory.  Pure
 * functions: callable from any thread, no allocation, no I/O.  Byte order
 * is converted here, through the packed wire structs of protocol.h.
 */
#include <assert.h>
#include <endian.h>
#include <string.h>

#include "reply.h"

static void reply_reset(struct nbd_reply *r)
{
	r->niov = 0;
	r->hdr_used = 0;
}

/* Reserve len header bytes. */
static void *hdr_take(struct nbd_reply *r, size_t len)
{
	void *p = r->hdr + r->hdr_used;

	assert(len <= r->hdr_max - r->hdr_used);
	r->hdr_used += len;
	return p;
}

/* Copy a wire struct into the header buffer. */
static void hdr_put(struct nbd_reply *r, const void *src, size_t len)
{
	memcpy(hdr_take(r, len), src, len);
}

/* Append base[0..len) to the reply, merging with the previous iovec when
 * contiguous (headers written one after the other). */
static void iov_add(struct nbd_reply *r, void *base, size_t len)
{
	struct iovec *last = r->niov ? &r->iov[r->niov - 1] : NULL;

	if (!len)
		return;
	if (last && (uint8_t *)last->iov_base + last->iov_len == (uint8_t *)base) {
		last->iov_len += len;
		return;
	}
	assert(r->niov < r->iov_max);
	r->iov[r->niov].iov_base = base;
	r->iov[r->niov].iov_len = len;
	r->niov++;
}

static void put_simple(struct nbd_reply *r, uint32_t error, uint64_t cookie)
{
	void *h = hdr_take(r, sizeof(struct nbd_simple_reply));

	iov_add(r, h, nbd_build_simple_reply(h, error, cookie));
}

/* A chunk header whose payload is payload_len bytes. */
static void put_chunk(struct nbd_reply *r, const struct nbd_conn_params *p,
		      const struct nbd_req_hdr *h, uint16_t flags, uint16_t type,
		      uint64_t payload_len)
{
	size_t len =
	    p->extended ? sizeof(struct nbd_ext_reply) : sizeof(struct nbd_structured_reply);
	void *b = hdr_take(r, len);

	iov_add(r, b,
		nbd_build_chunk(b, p->extended, flags, type, h->cookie, h->offset, payload_len));
}

/* Header bytes written since mark, as one iovec. */
static void iov_hdr_since(struct nbd_reply *r, size_t mark)
{
	iov_add(r, r->hdr + mark, r->hdr_used - mark);
}

void nbd_reply_error(struct nbd_reply *r, const struct nbd_conn_params *p,
		     const struct nbd_req_hdr *h, uint32_t error)
{
	struct nbd_chunk_error e = {.error = htobe32(error), .msg_len = 0};
	size_t mark;

	reply_reset(r);
	if (!p->structured) {
		put_simple(r, error, h->cookie);
		return;
	}
	put_chunk(r, p, h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, sizeof(e));
	mark = r->hdr_used;
	hdr_put(r, &e, sizeof(e));
	iov_hdr_since(r, mark);
}

void nbd_reply_ok(struct nbd_reply *r, const struct nbd_conn_params *p, const struct nbd_req_hdr *h)
{
	reply_reset(r);
	if (!p->extended && !(p->structured && h->type == NBD_CMD_READ))
		put_simple(r, 0, h->cookie);
	else
		put_chunk(r, p, h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
}

/* One READ chunk: data from data+rel, or a hole. */
static void read_chunk(struct nbd_reply *r, const struct nbd_conn_params *p,
		       const struct nbd_req_hdr *h, bool last, bool hole, uint8_t *data,
		       uint64_t rel, uint64_t len)
{
	uint16_t flags = last ? NBD_REPLY_FLAG_DONE : 0;
	size_t mark;

	if (hole) {
		struct nbd_chunk_offset_hole c = {
		    .offset = htobe64(h->offset + rel),
		    .len = htobe32((uint32_t)len),
		};

		put_chunk(r, p, h, flags, NBD_REPLY_TYPE_OFFSET_HOLE, sizeof(c));
		mark = r->hdr_used;
		hdr_put(r, &c, sizeof(c));
		iov_hdr_since(r, mark);
	} else {
		struct nbd_chunk_offset_data c = {.offset = htobe64(h->offset + rel)};

		put_chunk(r, p, h, flags, NBD_REPLY_TYPE_OFFSET_DATA, sizeof(c) + len);
		mark = r->hdr_used;
		hdr_put(r, &c, sizeof(c));
		iov_hdr_since(r, mark);
		iov_add(r, data + rel, len);
	}
}

struct seg {
	uint64_t rel, len;
	bool hole;
};

/* Split [0, len) into data and hole segments from ext[0..n), merging
 * neighbours of the same kind.  Returns the count (<= n + 1). */
static unsigned int read_segments(uint64_t len, const struct aiol_extent *ext, uint32_t n,
				  struct seg *seg)
{
	uint64_t pos = 0;
	unsigned int k = 0;

	for (uint32_t i = 0; i < n && pos < len; i++) {
		uint64_t el = ext[i].len;
		bool hole = ext[i].flags & AIOL_EXT_ZERO;

		if (!el)
			break;
		if (el > len - pos)
			el = len - pos;
		if (k && seg[k - 1].hole == hole)
			seg[k - 1].len += el;
		else
			seg[k++] = (struct seg){.rel = pos, .len = el, .hole = hole};
		pos += el;
	}
	if (pos < len) {
		if (k && !seg[k - 1].hole)
			seg[k - 1].len += len - pos;
		else
			seg[k++] = (struct seg){.rel = pos, .len = len - pos, .hole = false};
	}
	return k;
}

bool nbd_read_has_data(uint64_t len, const struct aiol_extent *ext, uint32_t next)
{
	struct seg seg[NBD_REPLY_SPARSE_MAX + 1];
	unsigned int n;

	assert(next <= NBD_REPLY_SPARSE_MAX);
	n = read_segments(len, ext, next, seg);
	for (unsigned int i = 0; i < n; i++)
		if (!seg[i].hole)
			return true;
	return false;
}

void nbd_reply_read(struct nbd_reply *r, const struct nbd_conn_params *p,
		    const struct nbd_req_hdr *h, void *data, const struct aiol_extent *ext,
		    uint32_t next)
{
	struct seg seg[NBD_REPLY_SPARSE_MAX + 1];
	unsigned int n;

	assert(next <= NBD_REPLY_SPARSE_MAX);
	if (h->len == 0) {
		nbd_reply_ok(r, p, h);
		return;
	}
	reply_reset(r);
	if (!p->structured) {
		put_simple(r, 0, h->cookie);
		iov_add(r, data, h->len);
		return;
	}
	if (!next) {
		read_chunk(r, p, h, true, false, data, 0, h->len);
		return;
	}
	n = read_segments(h->len, ext, next, seg);
	for (unsigned int i = 0; i < n; i++)
		read_chunk(r, p, h, i == n - 1, seg[i].hole, data, seg[i].rel, seg[i].len);
}

void nbd_reply_block_status(struct nbd_reply *r, const struct nbd_conn_params *p,
			    const struct nbd_req_hdr *h, struct aiol_extent *ext, uint32_t n)
{
	size_t esz = p->extended ? sizeof(struct nbd_block_descriptor_ext)
				 : sizeof(struct nbd_block_descriptor);
	uint8_t *wire = (uint8_t *)ext;
	uint64_t len = h->len, sum = 0;
	uint32_t k = 0;
	size_t mark;

	_Static_assert(sizeof(struct nbd_block_descriptor_ext) <= sizeof(struct aiol_extent),
		       "descriptors are written over the extents they come from");
	reply_reset(r);
	for (uint32_t i = 0; i < n && sum < len; i++) {
		uint64_t el = ext[i].len;
		uint32_t ef = ext[i].flags & (NBD_STATE_HOLE | NBD_STATE_ZERO);

		if (!el)
			break;
		if (el > len - sum)
			el = len - sum;
		if (p->extended) {
			struct nbd_block_descriptor_ext d = {.len = htobe64(el),
							     .flags = htobe64(ef)};

			memcpy(wire + esz * k, &d, sizeof(d));
		} else {
			struct nbd_block_descriptor d = {.len = htobe32((uint32_t)el),
							 .flags = htobe32(ef)};

			memcpy(wire + esz * k, &d, sizeof(d));
		}
		k++;
		sum += el;
		if (h->flags & NBD_CMD_FLAG_REQ_ONE)
			break;
	}
	if (k == 0) {
		/* Nothing known: one extent of plain data, always a safe answer. */
		if (p->extended) {
			struct nbd_block_descriptor_ext d = {.len = htobe64(len)};

			memcpy(wire, &d, sizeof(d));
		} else {
			struct nbd_block_descriptor d = {.len = htobe32((uint32_t)len)};

			memcpy(wire, &d, sizeof(d));
		}
		k = 1;
	}
	if (p->extended) {
		struct nbd_chunk_block_status_ext b = {
		    .context_id = htobe32(NBD_CONTEXT_BASE_ALLOCATION),
		    .count = htobe32(k),
		};

		put_chunk(r, p, h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS_EXT,
			  sizeof(b) + (uint64_t)k * esz);
		mark = r->hdr_used;
		hdr_put(r, &b, sizeof(b));
	} else {
		struct nbd_chunk_block_status b = {
		    .context_id = htobe32(NBD_CONTEXT_BASE_ALLOCATION),
		};

		put_chunk(r, p, h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
			  sizeof(b) + (uint64_t)k * esz);
		mark = r->hdr_used;
		hdr_put(r, &b, sizeof(b));
	}
	iov_hdr_since(r, mark);
	iov_add(r, wire, k * esz);
}
