/* SPDX-License-Identifier: MIT */
/*
 * Parsing of negotiation option data: the half of the protocol core that
 * handshake.c uses.  An option's data has been read in full (bounded by the
 * caller); these functions only look at it, so that every byte a client
 * controls is checked in one place with no I/O and no state, where unit
 * tests and fuzzers reach it directly.
 */
#ifndef AIOLOOP_NBD_OPTION_H
#define AIOLOOP_NBD_OPTION_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol.h"

/* The data of NBD_OPT_INFO / NBD_OPT_GO. */
struct nbd_opt_info {
	const char *name; /* into the option data, not terminated */
	uint32_t namelen; /* <= NBD_MAX_STRING */
	bool want_name;	  /* NBD_INFO_NAME requested */
	bool want_desc;	  /* NBD_INFO_DESCRIPTION requested */
};

/* Parse INFO/GO data b[0..len).  Returns 0, or NBD_REP_ERR_INVALID for
 * data that is not exactly a name and a list of info requests. */
uint32_t nbd_opt_parse_info(const uint8_t *b, uint32_t len, struct nbd_opt_info *out);

/* The data of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT. */
struct nbd_opt_meta {
	const char *name; /* the export, into the option data */
	uint32_t namelen; /* <= NBD_MAX_STRING */
	bool match;	  /* base:allocation was asked for (LIST: also by the
			     "base:" namespace or by no query at all) */
};

/* Parse meta-context data b[0..len) of a SET (set) or LIST.  Returns 0,
 * or NBD_REP_ERR_INVALID for data that is not exactly an export name and
 * a list of queries. */
uint32_t nbd_opt_parse_meta(const uint8_t *b, uint32_t len, bool set, struct nbd_opt_meta *out);

/* The one metadata context served, by name. */
extern const char nbd_base_allocation[];
#define NBD_BASE_ALLOCATION_LEN (sizeof("base:allocation") - 1)

#endif
