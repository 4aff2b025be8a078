// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness of the NBD protocol core alone (nbd/request.h,
 * nbd/reply.h), in-process: no server, no socket, no thread, so it runs
 * orders of magnitude faster than the session harnesses and every finding
 * is in the core itself.
 *
 * Input: byte 0 picks what was negotiated (bit 0 structured replies, bit 1
 * extended headers, bit 2 base:allocation, bit 3 a read-only export), byte 1
 * the advertised flags that vary (bit 0 FLUSH, 1 FUA, 2 TRIM, 3
 * WRITE_ZEROES, 4 FAST_ZERO); then requests as a client sends them, each
 * header followed by the payload the validator says follows it, and after
 * that what plays the engine: an errno byte (0: success), a count of
 * extents and, for each, a flags byte and a big-endian 32-bit length.  A
 * DISC or a bad magic ends the stream, as it ends a connection.
 *
 * With bit 7 of byte 0 set, the rest is option data instead (nbd/option.h):
 * bit 0 of byte 1 picks INFO/GO or meta-context data, bit 1 SET or LIST;
 * a parse that succeeds must name a string inside the data.
 *
 * Every reply built is checked as a client would read it: the reply's
 * bytes are exactly the chunks it announces, the last one (only) carries
 * DONE, and READ data and block descriptors never exceed the request.
 */
#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/option.h"
#include "nbd/reply.h"
#include "nbd/request.h"

#define READ_DATA_MAX (256u << 10)   /* READs up to this are built with data */
#define NBD_OPT_DATA_MAX (64u << 10) /* option data the server reads at most */

static uint8_t data[READ_DATA_MAX];

struct input {
	const uint8_t *p;
	size_t n;
};

static bool take(struct input *in, void *dst, size_t len)
{
	if (in->n < len)
		return false;
	memcpy(dst, in->p, len);
	in->p += len;
	in->n -= len;
	return true;
}

static uint8_t take_byte(struct input *in)
{
	uint8_t b = 0;

	take(in, &b, 1);
	return b;
}

/* The reply as one byte string (data iovecs included). */
static size_t flatten(const struct nbd_reply *r, uint8_t *out, size_t max)
{
	size_t n = 0;

	for (unsigned int i = 0; i < r->niov; i++) {
		assert(r->iov[i].iov_len <= max - n);
		memcpy(out + n, r->iov[i].iov_base, r->iov[i].iov_len);
		n += r->iov[i].iov_len;
	}
	return n;
}

/* Walk a reply as a client reads it; abort on any inconsistency. */
static void check_reply(const struct nbd_conn_params *p, const struct nbd_req_hdr *h,
			const struct nbd_reply *r)
{
	static uint8_t wire[READ_DATA_MAX + NBD_REPLY_HDR_MAX];
	size_t n = flatten(r, wire, sizeof(wire)), pos = 0;
	uint64_t covered = 0;
	bool done = false;
	uint32_t magic;

	memcpy(&magic, wire, sizeof(magic));
	if (be32toh(magic) == NBD_SIMPLE_REPLY_MAGIC) {
		struct nbd_simple_reply s;

		memcpy(&s, wire, sizeof(s));
		assert(be64toh(s.cookie) == h->cookie);
		/* Data follows only a successful READ. */
		assert(n == sizeof(s) ||
		       (h->type == NBD_CMD_READ && !s.error && n == sizeof(s) + h->len));
		return;
	}
	assert(p->structured);
	while (pos < n) {
		uint64_t len;
		uint16_t flags, type;

		assert(!done); /* nothing after the DONE chunk */
		if (p->extended) {
			struct nbd_ext_reply e;

			assert(n - pos >= sizeof(e));
			memcpy(&e, wire + pos, sizeof(e));
			assert(be32toh(e.magic) == NBD_EXT_REPLY_MAGIC);
			assert(be64toh(e.offset) == h->offset);
			flags = be16toh(e.flags);
			type = be16toh(e.type);
			len = be64toh(e.len);
			assert(be64toh(e.cookie) == h->cookie);
			pos += sizeof(e);
		} else {
			struct nbd_structured_reply c;

			assert(n - pos >= sizeof(c));
			memcpy(&c, wire + pos, sizeof(c));
			assert(be32toh(c.magic) == NBD_STRUCTURED_REPLY_MAGIC);
			flags = be16toh(c.flags);
			type = be16toh(c.type);
			len = be32toh(c.len);
			assert(be64toh(c.cookie) == h->cookie);
			pos += sizeof(c);
		}
		assert(len <= n - pos);
		done = flags & NBD_REPLY_FLAG_DONE;
		if (type == NBD_REPLY_TYPE_OFFSET_DATA) {
			struct nbd_chunk_offset_data d;

			assert(len >= sizeof(d));
			memcpy(&d, wire + pos, sizeof(d));
			assert(be64toh(d.offset) == h->offset + covered);
			covered += len - sizeof(d);
		} else if (type == NBD_REPLY_TYPE_OFFSET_HOLE) {
			struct nbd_chunk_offset_hole o;

			assert(len == sizeof(o));
			memcpy(&o, wire + pos, sizeof(o));
			assert(be64toh(o.offset) == h->offset + covered);
			covered += be32toh(o.len);
		} else if (type == NBD_REPLY_TYPE_BLOCK_STATUS) {
			assert(len >= sizeof(struct nbd_chunk_block_status) &&
			       (len - sizeof(struct nbd_chunk_block_status)) %
				       sizeof(struct nbd_block_descriptor) ==
				   0);
		} else if (type == NBD_REPLY_TYPE_BLOCK_STATUS_EXT) {
			assert(len >= sizeof(struct nbd_chunk_block_status_ext) &&
			       (len - sizeof(struct nbd_chunk_block_status_ext)) %
				       sizeof(struct nbd_block_descriptor_ext) ==
				   0);
		} else if (type == NBD_REPLY_TYPE_ERROR) {
			assert(len == sizeof(struct nbd_chunk_error));
		} else {
			assert(type == NBD_REPLY_TYPE_NONE && len == 0);
		}
		pos += len;
	}
	assert(done && pos == n);
	assert(covered == 0 || covered == h->len); /* a READ covers its range exactly */
}

/* One request and its reply.  Returns false where the server would end
 * the connection (DISC, a payload over the limit). */
static bool one_request(const struct nbd_conn_params *p, const struct nbd_req_hdr *h,
			struct input *in)
{
	struct iovec iov[NBD_REPLY_IOV_MAX];
	uint8_t hdr[NBD_REPLY_HDR_MAX];
	struct nbd_reply r = {
	    .iov = iov, .iov_max = NBD_REPLY_IOV_MAX, .hdr = hdr, .hdr_max = NBD_REPLY_HDR_MAX};
	struct aiol_extent ext[64];
	struct nbd_verdict v;
	uint8_t next;
	int err;

	nbd_validate(p, h, &v);
	if (v.disconnect)
		return false;
	/* Whatever it decides, the payload it counts is what follows. */
	if (v.payload) {
		size_t skip = v.payload < in->n ? (size_t)v.payload : in->n;

		in->p += skip;
		in->n -= skip;
	}
	if (v.disc)
		return false;
	/* The engine's part: an errno and the extents it found. */
	err = -(int)take_byte(in);
	next = take_byte(in) % 65;
	for (uint8_t i = 0; i < next; i++) {
		uint32_t len = 0;
		uint8_t f = take_byte(in);

		take(in, &len, sizeof(len));
		ext[i] = (struct aiol_extent){.len = be32toh(len), .flags = f & 3};
	}
	if (v.error) {
		nbd_reply_error(&r, p, h, v.error);
		check_reply(p, h, &r);
		return true;
	}
	if (err) {
		uint32_t e = nbd_errno(err, h->flags);

		assert(e);
		nbd_reply_error(&r, p, h, e);
		check_reply(p, h, &r);
		return true;
	}
	switch (h->type) {
	case NBD_CMD_READ:
		if (h->len > READ_DATA_MAX)
			return true; /* too big to check byte by byte here */
		if (next > NBD_REPLY_SPARSE_MAX)
			next = NBD_REPLY_SPARSE_MAX;
		if (!p->structured)
			next = 0;
		(void)nbd_read_has_data(h->len, ext, next);
		nbd_reply_read(&r, p, h, data, ext, next);
		break;
	case NBD_CMD_BLOCK_STATUS:
		nbd_reply_block_status(&r, p, h, ext, next);
		break;
	default:
		nbd_reply_ok(&r, p, h);
		break;
	}
	check_reply(p, h, &r);
	return true;
}

static void options(const uint8_t *b, size_t n, uint8_t mode)
{
	uint32_t len = n > NBD_OPT_DATA_MAX ? NBD_OPT_DATA_MAX : (uint32_t)n;
	struct nbd_opt_info oi;
	struct nbd_opt_meta om;

	if (mode & 1) {
		if (nbd_opt_parse_meta(b, len, mode & 2, &om) == 0)
			assert(om.namelen <= NBD_MAX_STRING && (const uint8_t *)om.name >= b &&
			       (const uint8_t *)om.name + om.namelen <= b + len);
	} else if (nbd_opt_parse_info(b, len, &oi) == 0) {
		assert(oi.namelen <= NBD_MAX_STRING && (const uint8_t *)oi.name >= b &&
		       (const uint8_t *)oi.name + oi.namelen <= b + len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
	struct input in = {buf, size};
	uint8_t neg = take_byte(&in), adv = take_byte(&in);

	if (neg & 0x80) {
		options(in.p, in.n, adv);
		return 0;
	}
	struct nbd_conn_params p = {
	    .size = 1ull << 30,
	    .structured = neg & 3,
	    .extended = neg & 2,
	    .meta = (neg & 4) && (neg & 3),
	    .max_payload = NBD_MAX_PAYLOAD,
	    .tflags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_CACHE | NBD_FLAG_CAN_MULTI_CONN,
	};

	if (neg & 8)
		p.tflags |= NBD_FLAG_READ_ONLY;
	if (p.structured)
		p.tflags |= NBD_FLAG_SEND_DF;
	if (adv & 1)
		p.tflags |= NBD_FLAG_SEND_FLUSH;
	if (adv & 2)
		p.tflags |= NBD_FLAG_SEND_FUA;
	if (adv & 4)
		p.tflags |= NBD_FLAG_SEND_TRIM;
	if (adv & 8)
		p.tflags |= NBD_FLAG_SEND_WRITE_ZEROES;
	if (adv & 16)
		p.tflags |= NBD_FLAG_SEND_FAST_ZERO;
	for (;;) {
		uint8_t raw[sizeof(struct nbd_ext_request)];
		struct nbd_req_hdr h;

		if (!take(&in, raw, nbd_req_hdr_size(p.extended)))
			break;
		if (nbd_parse_request(raw, p.extended, &h) < 0 || !one_request(&p, &h, &in))
			break; /* the server would disconnect */
	}
	return 0;
}
