// SPDX-License-Identifier: MIT
/*
 * Request parsing, validation and reply-header building for the
 * transmission phase (see request.h).  Pure functions: callable from any
 * thread, no allocation, no I/O.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "request.h"

int nbd_parse_request(const void *p, bool extended, struct nbd_req_hdr *out)
{
	if (extended) {
		struct nbd_ext_request r;

		memcpy(&r, p, sizeof(r));
		if (be32toh(r.magic) != NBD_EXT_REQUEST_MAGIC)
			return -EPROTO;
		out->flags = be16toh(r.flags);
		out->type = be16toh(r.type);
		out->cookie = be64toh(r.cookie);
		out->offset = be64toh(r.offset);
		out->len = be64toh(r.len);
	} else {
		struct nbd_request r;

		memcpy(&r, p, sizeof(r));
		if (be32toh(r.magic) != NBD_REQUEST_MAGIC)
			return -EPROTO;
		out->flags = be16toh(r.flags);
		out->type = be16toh(r.type);
		out->cookie = be64toh(r.cookie);
		out->offset = be64toh(r.offset);
		out->len = be32toh(r.len);
	}
	return 0;
}

#define KNOWN_CMD_FLAGS                                                                            \
	(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_DF | NBD_CMD_FLAG_REQ_ONE |        \
	 NBD_CMD_FLAG_FAST_ZERO | NBD_CMD_FLAG_PAYLOAD_LEN)

/* The error for a flag or command problem, or 0. */
static uint32_t check_flags(const struct nbd_conn_params *c, const struct nbd_req_hdr *r)
{
	uint16_t f = r->flags;

	if (f & ~KNOWN_CMD_FLAGS)
		return NBD_EINVAL;
	if ((f & NBD_CMD_FLAG_PAYLOAD_LEN) && (!c->extended || r->type != NBD_CMD_WRITE))
		return NBD_EINVAL;
	/* An extended-header WRITE without PAYLOAD_LEN breaks the spec's MUST,
	 * but qemu 8.2 and later send exactly that; like qemu's own server we
	 * take the length as the payload's (nbd_validate sets lenient). */
	/* FUA is valid on every command, once advertised. */
	if ((f & NBD_CMD_FLAG_FUA) && !(c->tflags & NBD_FLAG_SEND_FUA))
		return NBD_EINVAL;
	if ((f & NBD_CMD_FLAG_NO_HOLE) && r->type != NBD_CMD_WRITE_ZEROES)
		return NBD_EINVAL;
	if ((f & NBD_CMD_FLAG_DF) && (r->type != NBD_CMD_READ || !(c->tflags & NBD_FLAG_SEND_DF)))
		return NBD_EINVAL;
	if ((f & NBD_CMD_FLAG_REQ_ONE) && r->type != NBD_CMD_BLOCK_STATUS)
		return NBD_EINVAL;
	if ((f & NBD_CMD_FLAG_FAST_ZERO) &&
	    (r->type != NBD_CMD_WRITE_ZEROES || !(c->tflags & NBD_FLAG_SEND_FAST_ZERO)))
		return NBD_EINVAL;
	return 0;
}

/* The error for a command the export or the negotiation does not allow. */
static uint32_t check_command(const struct nbd_conn_params *c, const struct nbd_req_hdr *r)
{
	bool ro = c->tflags & NBD_FLAG_READ_ONLY;

	switch (r->type) {
	case NBD_CMD_READ:
		return 0;
	case NBD_CMD_WRITE:
		return ro ? NBD_EPERM : 0;
	case NBD_CMD_FLUSH:
		return c->tflags & NBD_FLAG_SEND_FLUSH ? 0 : NBD_EINVAL;
	case NBD_CMD_TRIM:
		if (ro)
			return NBD_EPERM;
		return c->tflags & NBD_FLAG_SEND_TRIM ? 0 : NBD_EINVAL;
	case NBD_CMD_CACHE:
		return c->tflags & NBD_FLAG_SEND_CACHE ? 0 : NBD_EINVAL;
	case NBD_CMD_WRITE_ZEROES:
		if (ro)
			return NBD_EPERM;
		return c->tflags & NBD_FLAG_SEND_WRITE_ZEROES ? 0 : NBD_EINVAL;
	case NBD_CMD_BLOCK_STATUS:
		return c->structured && c->meta ? 0 : NBD_EINVAL;
	default:
		return NBD_EINVAL;
	}
}

void nbd_validate(const struct nbd_conn_params *c, const struct nbd_req_hdr *r,
		  struct nbd_verdict *v)
{
	bool writes = r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES;

	memset(v, 0, sizeof(*v));

	/* 1. How many payload bytes follow: needed even to reject, so that a
	 * rejected request never leaves its payload to be read as a header. */
	if (c->extended) {
		bool flagged = r->flags & NBD_CMD_FLAG_PAYLOAD_LEN;

		if (flagged || r->type == NBD_CMD_WRITE) {
			if (r->len > c->max_payload) {
				/* The spec's SHOULD: too big to drain politely. */
				v->disconnect = true;
				return;
			}
			v->payload = r->len;
			v->lenient = !flagged;
		}
	} else if (r->type == NBD_CMD_WRITE) {
		v->payload = r->len; /* <= 4 GiB - 1: drained if rejected */
	}

	if (r->type == NBD_CMD_DISC) {
		v->disc = true;
		return;
	}

	/* 2. Command and flags. */
	v->error = check_command(c, r);
	if (v->error == NBD_EPERM) {
		/* Read-only wins over a flag mistake: it says more. */
		return;
	}
	if (!v->error)
		v->error = check_flags(c, r);
	if (v->error)
		return;
	if (r->type == NBD_CMD_FLUSH)
		return; /* offset and length are reserved */

	/* 3. Lengths. */
	if ((r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) && r->len > c->max_payload) {
		v->error = NBD_EINVAL;
		return;
	}
	if (r->type == NBD_CMD_BLOCK_STATUS && r->len == 0) {
		v->error = NBD_EINVAL;
		return;
	}

	/* 4. Range, overflow-safe. */
	if (r->offset > c->size || r->len > c->size - r->offset) {
		v->error = writes ? NBD_ENOSPC : NBD_EINVAL;
		return;
	}
}

uint32_t nbd_errno(int err, uint16_t cmd_flags)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return 0;
	case EPERM:
	case EROFS:
	case EACCES:
		return NBD_EPERM;
	case EIO:
		return NBD_EIO;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
		return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return NBD_ENOSPC;
	case EOVERFLOW:
		/* The spec: only a client that sent DF may see EOVERFLOW. */
		return cmd_flags & NBD_CMD_FLAG_DF ? NBD_EOVERFLOW : NBD_EINVAL;
	case EOPNOTSUPP: /* == ENOTSUP on Linux */
		/* The spec: ENOTSUP is the answer to FAST_ZERO only. */
		return cmd_flags & NBD_CMD_FLAG_FAST_ZERO ? NBD_ENOTSUP : NBD_EINVAL;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		return NBD_EIO;
	}
}

size_t nbd_build_simple_reply(void *buf, uint32_t error, uint64_t cookie)
{
	struct nbd_simple_reply r = {
	    .magic = htobe32(NBD_SIMPLE_REPLY_MAGIC),
	    .error = htobe32(error),
	    .cookie = htobe64(cookie),
	};

	memcpy(buf, &r, sizeof(r));
	return sizeof(r);
}

size_t nbd_build_chunk(void *buf, bool extended, uint16_t flags, uint16_t type, uint64_t cookie,
		       uint64_t req_offset, uint64_t payload_len)
{
	if (extended) {
		struct nbd_ext_reply r = {
		    .magic = htobe32(NBD_EXT_REPLY_MAGIC),
		    .flags = htobe16(flags),
		    .type = htobe16(type),
		    .cookie = htobe64(cookie),
		    .offset = htobe64(req_offset),
		    .len = htobe64(payload_len),
		};

		memcpy(buf, &r, sizeof(r));
		return sizeof(r);
	} else {
		struct nbd_structured_reply r = {
		    .magic = htobe32(NBD_STRUCTURED_REPLY_MAGIC),
		    .flags = htobe16(flags),
		    .type = htobe16(type),
		    .cookie = htobe64(cookie),
		    .len = htobe32((uint32_t)payload_len),
		};

		memcpy(buf, &r, sizeof(r));
		return sizeof(r);
	}
}

const char *nbd_cmd_name(uint16_t type)
{
	static const char *const names[] = {
	    "READ", "WRITE", "DISC", "FLUSH", "TRIM", "CACHE", "WRITE_ZEROES", "BLOCK_STATUS",
	};

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "unknown";
}

const char *nbd_opt_name(uint32_t opt)
{
	static const char *const names[] = {
	    "0",
	    "EXPORT_NAME",
	    "ABORT",
	    "LIST",
	    "PEEK_EXPORT",
	    "STARTTLS",
	    "INFO",
	    "GO",
	    "STRUCTURED_REPLY",
	    "LIST_META_CONTEXT",
	    "SET_META_CONTEXT",
	    "EXTENDED_HEADERS",
	};

	return opt < sizeof(names) / sizeof(names[0]) ? names[opt] : "unknown";
}
