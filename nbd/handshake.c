// SPDX-License-Identifier: MIT
/*
 * NBD negotiation (fixed newstyle): the greeting, the client flags, then
 * options until EXPORT_NAME, GO or ABORT.  Runs on a handshake thread with
 * blocking, poll-bounded I/O through struct nbd_io, so that a TLS layer can
 * replace the byte transport without touching the option logic.
 *
 * Invariants (the traps other servers fell into): every option's data is
 * read in full (bounded by NBD_OPT_MAX_LEN, over which we hard-disconnect)
 * before it is looked at, and every option gets exactly one final reply;
 * nothing client-sized is allocated.  Replies that list several items are
 * only started once the whole option parsed cleanly.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "internal.h"
#include "option.h"
#include "tls.h"

#define NBD_OPT_MAX_LEN (64u << 10) /* option data we accept at all */
#define NBD_MAX_OPTIONS 4096	    /* options per connection (DoS bound) */
#define OUT_BUF_SIZE (3 * NBD_MAX_STRING)

static int read_full(struct nbd_io *io, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = io->ops->recv(io, p, len);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(struct nbd_io *io, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = io->ops->send(io, p, len);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- negotiation ---- */

struct hs {
	struct nbd_server *srv;
	struct nbd_io *io;
	uint8_t *buf; /* option data, NBD_OPT_MAX_LEN */
	uint8_t *out; /* reply assembly, OUT_BUF_SIZE */
	bool no_zeroes;
	bool structured;
	bool extended;
	bool meta_selected; /* base:allocation chosen by the last SET */
	int meta_export;    /* ... for this export */
};

/* Send one option reply: header then len bytes of data (len <= OUT_BUF_SIZE - 20). */
static int opt_reply(struct hs *hs, uint32_t opt, uint32_t type, const void *data, size_t len)
{
	struct nbd_option_reply r = {
	    .magic = htobe64(NBD_REP_MAGIC),
	    .option = htobe32(opt),
	    .type = htobe32(type),
	    .len = htobe32((uint32_t)len),
	};

	memcpy(hs->out, &r, sizeof(r));
	if (len)
		memcpy(hs->out + sizeof(r), data, len);
	return write_full(hs->io, hs->out, sizeof(r) + len);
}

static int opt_error(struct hs *hs, uint32_t opt, uint32_t type)
{
	aiol_debug("nbd: option %s (%u): error reply 0x%x", nbd_opt_name(opt), opt, type);
	return opt_reply(hs, opt, type, NULL, 0);
}

static int send_info(struct hs *hs, uint32_t opt, uint16_t type, const void *data, size_t len)
{
	uint8_t b[sizeof(struct nbd_be16) + NBD_MAX_STRING];

	((struct nbd_be16 *)(void *)b)->v = htobe16(type);
	memcpy(b + sizeof(struct nbd_be16), data, len);
	return opt_reply(hs, opt, NBD_REP_INFO, b, sizeof(struct nbd_be16) + len);
}

/* NBD_OPT_INFO / NBD_OPT_GO.  Returns 0 (replied, stay in negotiation),
 * 1 (GO acknowledged), -errno. */
static int opt_info_go(struct hs *hs, uint32_t opt, uint32_t len, struct nbd_session *out)
{
	const struct nbd_export *e;
	struct nbd_opt_info oi;
	uint32_t err;
	int idx, ret;

	err = nbd_opt_parse_info(hs->buf, len, &oi);
	if (err)
		return opt_error(hs, opt, err);
	idx = nbd_export_find(hs->srv, oi.name, oi.namelen);
	if (idx < 0)
		return opt_error(hs, opt, NBD_REP_ERR_UNKNOWN);
	e = &hs->srv->exports[idx];

	{
		struct nbd_info_export ie = {
		    .info = htobe16(NBD_INFO_EXPORT),
		    .size = htobe64(__atomic_load_n(&e->info->size, __ATOMIC_ACQUIRE)),
		    .flags = htobe16(nbd_export_tflags(e, hs->structured)),
		};
		ret = opt_reply(hs, opt, NBD_REP_INFO, &ie, sizeof(ie));
		if (ret < 0)
			return ret;
	}
	if (oi.want_name) {
		ret = send_info(hs, opt, NBD_INFO_NAME, e->name, strlen(e->name));
		if (ret < 0)
			return ret;
	}
	if (oi.want_desc && e->description) {
		ret = send_info(hs, opt, NBD_INFO_DESCRIPTION, e->description,
				strlen(e->description));
		if (ret < 0)
			return ret;
	}
	{
		struct nbd_info_block_size bs = {
		    .info = htobe16(NBD_INFO_BLOCK_SIZE),
		    .minimum = htobe32(1),
		    .preferred = htobe32(e->pref_block),
		    .maximum = htobe32(NBD_MAX_PAYLOAD),
		};
		ret = opt_reply(hs, opt, NBD_REP_INFO, &bs, sizeof(bs));
		if (ret < 0)
			return ret;
	}
	ret = opt_reply(hs, opt, NBD_REP_ACK, NULL, 0);
	if (ret < 0 || opt == NBD_OPT_INFO)
		return ret;
	out->export_idx = (unsigned int)idx;
	out->structured = hs->structured;
	out->extended = hs->extended;
	out->meta = hs->structured && hs->meta_selected && hs->meta_export == idx;
	return 1;
}

/* NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT. */
static int opt_meta(struct hs *hs, uint32_t opt, uint32_t len)
{
	bool set = opt == NBD_OPT_SET_META_CONTEXT;
	struct nbd_opt_meta om;
	uint32_t err;
	int idx, ret;

	if (set)
		hs->meta_selected = false; /* replaced even on failure */
	if (!hs->structured)
		return opt_error(hs, opt, NBD_REP_ERR_INVALID);
	/* Parse everything before replying anything. */
	err = nbd_opt_parse_meta(hs->buf, len, set, &om);
	if (err)
		return opt_error(hs, opt, err);
	idx = nbd_export_find(hs->srv, om.name, om.namelen);
	if (idx < 0)
		return opt_error(hs, opt, NBD_REP_ERR_UNKNOWN);

	if (om.match) {
		uint8_t r[sizeof(struct nbd_be32) + NBD_BASE_ALLOCATION_LEN];

		((struct nbd_be32 *)(void *)r)->v = htobe32(set ? NBD_CONTEXT_BASE_ALLOCATION : 0);
		memcpy(r + sizeof(struct nbd_be32), nbd_base_allocation, NBD_BASE_ALLOCATION_LEN);
		ret = opt_reply(hs, opt, NBD_REP_META_CONTEXT, r, sizeof(r));
		if (ret < 0)
			return ret;
	}
	if (set) {
		hs->meta_selected = om.match;
		hs->meta_export = idx;
	}
	return opt_reply(hs, opt, NBD_REP_ACK, NULL, 0);
}

static int opt_list(struct hs *hs, uint32_t opt, uint32_t len)
{
	const size_t h = sizeof(struct nbd_be32); /* the name's length */
	uint8_t r[sizeof(struct nbd_be32) + 2 * NBD_MAX_STRING];
	int ret;

	if (len)
		return opt_error(hs, opt, NBD_REP_ERR_INVALID);
	for (unsigned int i = 0; i < hs->srv->nexports; i++) {
		const struct nbd_export *e = &hs->srv->exports[i];
		size_t nl = strlen(e->name), dl = e->description ? strlen(e->description) : 0;

		((struct nbd_be32 *)(void *)r)->v = htobe32((uint32_t)nl);
		memcpy(r + h, e->name, nl);
		if (dl)
			memcpy(r + h + nl, e->description, dl);
		ret = opt_reply(hs, opt, NBD_REP_SERVER, r, h + nl + dl);
		if (ret < 0)
			return ret;
	}
	return opt_reply(hs, opt, NBD_REP_ACK, NULL, 0);
}

/* NBD_OPT_EXPORT_NAME: no error reply exists, failures disconnect. */
static int opt_export_name(struct hs *hs, uint32_t len, struct nbd_session *out)
{
	struct nbd_export_name_reply r;
	uint8_t zeroes[124] = {0};
	const struct nbd_export *e;
	int idx, ret;

	if (hs->extended || len > NBD_MAX_STRING) {
		aiol_debug("nbd: EXPORT_NAME refused (%s)",
			   hs->extended ? "after extended headers" : "name too long");
		return -EPROTO;
	}
	idx = nbd_export_find(hs->srv, (const char *)hs->buf, len);
	if (idx < 0) {
		char safe[65];
		size_t n = len < sizeof(safe) - 1 ? len : sizeof(safe) - 1;

		/* Client bytes never reach the log unfiltered. */
		for (size_t i = 0; i < n; i++)
			safe[i] = hs->buf[i] >= 0x20 && hs->buf[i] < 0x7f ? (char)hs->buf[i] : '?';
		safe[n] = '\0';
		aiol_info("nbd: client asked for an unknown export '%s'%s", safe,
			  len > n ? "..." : "");
		return -ENOENT;
	}
	e = &hs->srv->exports[idx];
	r.size = htobe64(__atomic_load_n(&e->info->size, __ATOMIC_ACQUIRE));
	r.flags = htobe16(nbd_export_tflags(e, hs->structured));
	ret = write_full(hs->io, &r, sizeof(r));
	if (ret == 0 && !hs->no_zeroes)
		ret = write_full(hs->io, zeroes, sizeof(zeroes));
	if (ret < 0)
		return ret;
	out->export_idx = (unsigned int)idx;
	out->structured = hs->structured;
	out->extended = false;
	out->meta = hs->structured && hs->meta_selected && hs->meta_export == idx;
	return 1;
}

/* NBD_OPT_STARTTLS (tls-sync.c does the TLS part).  After the TLS
 * handshake everything negotiated before it is forgotten. */
static int opt_starttls(struct hs *hs, uint32_t opt, uint32_t len)
{
	int ret;

	if (!hs->srv->tls)
		return opt_error(hs, opt, len ? NBD_REP_ERR_INVALID : NBD_REP_ERR_POLICY);
	if (len || nbd_io_is_tls(hs->io))
		return opt_error(hs, opt, NBD_REP_ERR_INVALID);
	ret = opt_reply(hs, opt, NBD_REP_ACK, NULL, 0);
	if (ret < 0)
		return ret;
	ret = nbd_io_start_tls(hs->io, hs->srv->tls);
	if (ret < 0)
		return ret;	/* hard disconnect: the stream is unusable */
	hs->structured = false;
	hs->extended = false;
	hs->meta_selected = false;
	hs->meta_export = -1;
	return 0;
}

/* With --tls=require, options before STARTTLS get ERR_TLS_REQD (and
 * EXPORT_NAME, which cannot fail, a disconnect).  Returns 1 when opt may
 * proceed, 0 when it was answered, -errno to disconnect. */
static int tls_gate(struct hs *hs, uint32_t opt)
{
	if (nbd_tls_creds_mode(hs->srv->tls) != NBD_TLS_REQUIRE || nbd_io_is_tls(hs->io) ||
	    opt == NBD_OPT_STARTTLS || opt == NBD_OPT_ABORT)
		return 1;
	if (opt == NBD_OPT_EXPORT_NAME) {
		aiol_info("nbd: EXPORT_NAME before STARTTLS while TLS is required: disconnecting");
		return -EPERM;
	}
	return opt_error(hs, opt, NBD_REP_ERR_TLS_REQD);
}

static int negotiate(struct hs *hs, struct nbd_session *out)
{
	struct nbd_greeting g = {
	    .magic = htobe64(NBD_MAGIC),
	    .opts_magic = htobe64(NBD_OPTS_MAGIC),
	    .flags = htobe16(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES),
	};
	uint32_t cflags;
	int ret;

	ret = write_full(hs->io, &g, sizeof(g));
	if (ret < 0)
		return ret;
	ret = read_full(hs->io, &cflags, sizeof(cflags));
	if (ret < 0)
		return ret;
	cflags = be32toh(cflags);
	if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
		aiol_info("nbd: client sent unknown flags 0x%x: disconnecting", cflags);
		return -EPROTO;
	}
	hs->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

	for (unsigned int n = 0;; n++) {
		struct nbd_option oh;
		uint32_t opt, len;

		if (n >= NBD_MAX_OPTIONS) {
			aiol_info("nbd: more than %u options: disconnecting", NBD_MAX_OPTIONS);
			return -EPROTO;
		}
		ret = read_full(hs->io, &oh, sizeof(oh));
		if (ret < 0)
			return ret;
		if (be64toh(oh.magic) != NBD_OPTS_MAGIC) {
			aiol_info("nbd: bad option magic: disconnecting");
			return -EPROTO;
		}
		opt = be32toh(oh.option);
		len = be32toh(oh.len);
		if (len > NBD_OPT_MAX_LEN) {
			aiol_info("nbd: option %u with %u bytes of data: disconnecting", opt, len);
			return -EPROTO;
		}
		ret = read_full(hs->io, hs->buf, len);
		if (ret < 0)
			return ret;
		aiol_debug("nbd: option %s (%u), %u bytes", nbd_opt_name(opt), opt, len);

		if (atomic_load(&hs->srv->stopping) && opt != NBD_OPT_ABORT) {
			if (opt == NBD_OPT_EXPORT_NAME)
				return -ESHUTDOWN;
			ret = opt_error(hs, opt, NBD_REP_ERR_SHUTDOWN);
			if (ret < 0)
				return ret;
			continue;
		}

		ret = tls_gate(hs, opt);
		if (ret < 0)
			return ret;
		if (ret == 0)
			continue;

		switch (opt) {
		case NBD_OPT_EXPORT_NAME:
			ret = opt_export_name(hs, len, out);
			break;
		case NBD_OPT_ABORT:
			/* The client may not wait for the ACK: ignore errors. */
			opt_reply(hs, opt, NBD_REP_ACK, NULL, 0);
			return 1;
		case NBD_OPT_LIST:
			ret = opt_list(hs, opt, len);
			break;
		case NBD_OPT_STARTTLS:
			ret = opt_starttls(hs, opt, len);
			break;
		case NBD_OPT_INFO:
		case NBD_OPT_GO:
			ret = opt_info_go(hs, opt, len, out);
			break;
		case NBD_OPT_STRUCTURED_REPLY:
			if (len || hs->structured) {
				ret = opt_error(hs, opt, NBD_REP_ERR_INVALID);
				break;
			}
			hs->structured = true;
			ret = opt_reply(hs, opt, NBD_REP_ACK, NULL, 0);
			break;
		case NBD_OPT_LIST_META_CONTEXT:
		case NBD_OPT_SET_META_CONTEXT:
			ret = opt_meta(hs, opt, len);
			break;
		case NBD_OPT_EXTENDED_HEADERS:
			if (len || hs->extended) {
				ret = opt_error(hs, opt, NBD_REP_ERR_INVALID);
				break;
			}
			hs->extended = true;
			hs->structured = true;
			ret = opt_reply(hs, opt, NBD_REP_ACK, NULL, 0);
			break;
		default:
			ret = opt_error(hs, opt, NBD_REP_ERR_UNSUP);
			break;
		}
		if (ret != 0) {
			if (ret == 1)
				return 0; /* transmission */
			return ret;
		}
	}
}

int nbd_handshake(struct nbd_server *srv, struct nbd_io *io, struct nbd_session *out)
{
	struct hs hs = {
	    .srv = srv,
	    .io = io,
	    .meta_export = -1,
	};
	int ret;

	hs.buf = malloc(NBD_OPT_MAX_LEN);
	hs.out = malloc(OUT_BUF_SIZE);
	if (!hs.buf || !hs.out) {
		ret = -ENOMEM;
		goto out;
	}
	ret = negotiate(&hs, out);
	if (ret == 0)
		out->tls = nbd_io_take_tls(io);
	else
		nbd_io_free_tls(io);
out:
	free(hs.out);
	free(hs.buf);
	return ret;
}
