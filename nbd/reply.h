/* SPDX-License-Identifier: MIT */
/*
 * Encoding of transmission-phase replies: the wire half of the protocol
 * core (request.h is the parsing half).  A reply is built into a caller's
 * iovec array and header buffer: header bytes are written big-endian into
 * the buffer, data (a READ's buffer, block descriptors) is referenced in
 * place, and the iovecs then go to the transport as they are.  No I/O, no
 * allocation, no state: unit tests and fuzzers call these directly.
 */
#ifndef AIOLOOP_NBD_REPLY_H
#define AIOLOOP_NBD_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "aioloop/engine.h"
#include "protocol.h"
#include "request.h"

/* Extents a sparse READ is split by at most (its hole lookup's size). */
#define NBD_REPLY_SPARSE_MAX 16
/* The most header bytes one chunk takes: an extended reply header and the
 * longest fixed payload head (OFFSET_HOLE). */
#define NBD_REPLY_CHUNK_MAX (sizeof(struct nbd_ext_reply) + sizeof(struct nbd_chunk_offset_hole))
/* Room any reply needs: a READ of NBD_REPLY_SPARSE_MAX + 1 segments, each a
 * header iovec (neighbouring headers merge) and a data iovec. */
#define NBD_REPLY_IOV_MAX (2 * (NBD_REPLY_SPARSE_MAX + 1) + 2)
#define NBD_REPLY_HDR_MAX ((NBD_REPLY_SPARSE_MAX + 2) * NBD_REPLY_CHUNK_MAX)

struct nbd_reply {
	struct iovec *iov; /* iov_max entries, NBD_REPLY_IOV_MAX suffice */
	unsigned int niov, iov_max;
	uint8_t *hdr; /* hdr_max bytes, NBD_REPLY_HDR_MAX suffice */
	size_t hdr_used, hdr_max;
};

/* Each builder below replaces what r held with one complete reply to
 * request h on a connection that negotiated p; r->iov[0..niov) is then the
 * reply on the wire.  Running out of room in r is a caller's bug
 * (asserted). */

/* An error: a simple reply, or one ERROR chunk. */
void nbd_reply_error(struct nbd_reply *r, const struct nbd_conn_params *p,
		     const struct nbd_req_hdr *h, uint32_t error);
/* Success without data (every command but a non-empty READ and
 * BLOCK_STATUS). */
void nbd_reply_ok(struct nbd_reply *r, const struct nbd_conn_params *p,
		  const struct nbd_req_hdr *h);
/* A successful READ of h->len bytes at data.  ext[0..next) is what a hole
 * lookup found over the range (next <= NBD_REPLY_SPARSE_MAX; 0: none):
 * with structured replies, holes are sent as OFFSET_HOLE chunks and data
 * as OFFSET_DATA, neighbours of one kind merged.  data is referenced, not
 * copied, and may be NULL where ext says the range holds no data. */
void nbd_reply_read(struct nbd_reply *r, const struct nbd_conn_params *p,
		    const struct nbd_req_hdr *h, void *data, const struct aiol_extent *ext,
		    uint32_t next);
/* Whether a READ of len bytes over ext[0..next) has any data to read
 * (false: all holes, the reply needs no read). */
bool nbd_read_has_data(uint64_t len, const struct aiol_extent *ext, uint32_t next);
/* A BLOCK_STATUS reply for context NBD_CONTEXT_BASE_ALLOCATION from the
 * engine's extents ext[0..n), clipped to the request and to one extent
 * with REQ_ONE; with none usable, one extent of plain data.  The
 * descriptors are written over ext itself (each lies at or before the
 * extent it comes from), which the reply then references: ext must live
 * until the reply is sent. */
void nbd_reply_block_status(struct nbd_reply *r, const struct nbd_conn_params *p,
			    const struct nbd_req_hdr *h, struct aiol_extent *ext, uint32_t n);

#endif
