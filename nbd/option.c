// SPDX-License-Identifier: MIT
/*
 * Option data parsing for negotiation (see option.h).  Pure functions:
 * callable from any thread, no allocation, no I/O.  Lone big-endian fields
 * are read in place through the packed structs of protocol.h.
 */
#include <endian.h>
#include <string.h>

#include "option.h"

const char nbd_base_allocation[] = "base:allocation";

static uint32_t be32_at(const uint8_t *p)
{
	return be32toh(((const struct nbd_be32 *)(const void *)p)->v);
}

static uint16_t be16_at(const uint8_t *p)
{
	return be16toh(((const struct nbd_be16 *)(const void *)p)->v);
}

uint32_t nbd_opt_parse_info(const uint8_t *b, uint32_t len, struct nbd_opt_info *out)
{
	uint32_t namelen;
	uint16_t nreq;

	memset(out, 0, sizeof(*out));
	/* name length (32), name, count of requests (16), requests (16 each) */
	if (len < 6)
		return NBD_REP_ERR_INVALID;
	namelen = be32_at(b);
	if (namelen > len - 6 || namelen > NBD_MAX_STRING)
		return NBD_REP_ERR_INVALID;
	nreq = be16_at(b + 4 + namelen);
	if (len != 6 + namelen + 2u * nreq)
		return NBD_REP_ERR_INVALID;
	out->name = (const char *)b + 4;
	out->namelen = namelen;
	for (unsigned int i = 0; i < nreq; i++) {
		uint16_t t = be16_at(b + 6 + namelen + 2 * i);

		if (t == NBD_INFO_NAME)
			out->want_name = true;
		else if (t == NBD_INFO_DESCRIPTION)
			out->want_desc = true;
		/* NBD_INFO_BLOCK_SIZE is always sent; others are ignored. */
	}
	return 0;
}

uint32_t nbd_opt_parse_meta(const uint8_t *b, uint32_t len, bool set, struct nbd_opt_meta *out)
{
	uint32_t namelen, nq, pos;

	memset(out, 0, sizeof(*out));
	/* name length (32), name, count of queries (32), queries (length
	 * (32) and string each) */
	if (len < 8)
		return NBD_REP_ERR_INVALID;
	namelen = be32_at(b);
	if (namelen > len - 8 || namelen > NBD_MAX_STRING)
		return NBD_REP_ERR_INVALID;
	nq = be32_at(b + 4 + namelen);
	pos = 8 + namelen;
	for (uint32_t i = 0; i < nq; i++) {
		uint32_t ql;

		if (len - pos < 4)
			return NBD_REP_ERR_INVALID;
		ql = be32_at(b + pos);
		pos += 4;
		if (ql > len - pos)
			return NBD_REP_ERR_INVALID;
		if (ql == NBD_BASE_ALLOCATION_LEN && !memcmp(b + pos, nbd_base_allocation, ql))
			out->match = true;
		else if (!set && ql == 5 && !memcmp(b + pos, "base:", 5))
			out->match = true; /* namespace wildcard, LIST only */
		pos += ql;
	}
	if (pos != len)
		return NBD_REP_ERR_INVALID;
	if (nq == 0 && !set)
		out->match = true; /* list everything */
	out->name = (const char *)b + 4;
	out->namelen = namelen;
	return 0;
}
