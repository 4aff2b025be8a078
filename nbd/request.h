/* SPDX-License-Identifier: MIT */
/*
 * Transmission-phase helpers that hold no state and do no I/O, so that unit
 * tests can drive them directly: parsing a request header, the single
 * request validator, the single errno -> NBD error map, and the builders of
 * reply headers.
 */
#ifndef AIOLOOP_NBD_REQUEST_H
#define AIOLOOP_NBD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

/* A request header in host order, from either the compact (28-byte) or the
 * extended (32-byte) form. */
struct nbd_req_hdr {
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset;
	uint64_t len;
};

/* What the validator knows about a connection: the export as advertised to
 * it and what was negotiated. */
struct nbd_conn_params {
	uint64_t size;	      /* export size */
	uint16_t tflags;      /* transmission flags sent to this client */
	bool structured;      /* structured replies (or extended headers) */
	bool extended;	      /* extended headers */
	bool meta;	      /* base:allocation selected for this export */
	uint32_t max_payload; /* largest READ/WRITE served */
};

/* The validator's decision about one request. */
struct nbd_verdict {
	uint32_t error;	  /* NBD_E* to reply with; 0: perform it */
	uint64_t payload; /* bytes following the header on the wire:
			     received into a buffer (error == 0) or
			     drained (error != 0) */
	bool disconnect;  /* hard disconnect, no reply */
	bool disc;	  /* NBD_CMD_DISC: no reply, finish and close */
	bool lenient;	  /* an extended WRITE without PAYLOAD_LEN (qemu >= 8.2):
			     its length taken as the payload's */
};

/* The id of base:allocation, the one metadata context served. */
#define NBD_CONTEXT_BASE_ALLOCATION 1

/* Header size on the wire. */
static inline size_t nbd_req_hdr_size(bool extended)
{
	return extended ? sizeof(struct nbd_ext_request) : sizeof(struct nbd_request);
}

/* Parse a request header of nbd_req_hdr_size(extended) bytes at p.
 * Returns 0, or -EPROTO when the magic is not the one negotiated (the
 * stream is out of step: the caller disconnects). */
int nbd_parse_request(const void *p, bool extended, struct nbd_req_hdr *out);

/* The one request validator: decide what to do with r on a connection
 * with parameters c.  Checks, in order: payload bounds, the command, the
 * flags (known, valid for the command, advertised), the command against
 * what was advertised and negotiated, lengths against max_payload, and the
 * range against the export size (overflow-safe).  Never fails itself. */
void nbd_validate(const struct nbd_conn_params *c, const struct nbd_req_hdr *r,
		  struct nbd_verdict *v);

/* The one errno -> NBD error map.  err may be positive or negative; 0 maps
 * to 0.  EDQUOT/EFBIG -> ENOSPC, EROFS/EACCES -> EPERM, anything unknown ->
 * EIO.  cmd_flags are the request's: as the spec says, ENOTSUP/EOPNOTSUPP
 * maps to NBD_ENOTSUP only where the client sent FAST_ZERO and EOVERFLOW to
 * NBD_EOVERFLOW only where it sent DF; to NBD_EINVAL otherwise. */
uint32_t nbd_errno(int err, uint16_t cmd_flags);

/* Reply headers.  Each writes into buf (big-endian) and returns the number
 * of bytes written. */
size_t nbd_build_simple_reply(void *buf, uint32_t error, uint64_t cookie);
/* A structured chunk header (20 bytes) or, when extended, an extended reply
 * header (32 bytes) whose offset field is the request's offset. */
size_t nbd_build_chunk(void *buf, bool extended, uint16_t flags, uint16_t type, uint64_t cookie,
		       uint64_t req_offset, uint64_t payload_len);

/* Human-readable names for logs. */
const char *nbd_cmd_name(uint16_t type);
const char *nbd_opt_name(uint32_t opt);

#endif
