// SPDX-License-Identifier: MIT
/*
 * TLS in a build without GnuTLS: every function of tls.h, failing.
 * nbd_tls_creds_load() refuses any mode but off, so no session, driver or
 * TLS transport can ever exist and the rest are never reached with one;
 * they are defined so that callers build unchanged (as nbdkit's crypto.c
 * does without GnuTLS).
 */
#include <errno.h>

#include "aioloop/log.h"
#include "tls.h"

bool nbd_tls_available(void)
{
	return false;
}

int nbd_tls_creds_load(const struct nbd_tls_opts *opts, struct nbd_tls_creds **out)
{
	*out = NULL;
	if (opts->mode == NBD_TLS_OFF)
		return 0;
	aiol_err("--tls: this build has no TLS support (GnuTLS was not found)");
	return -ENOTSUP;
}

void nbd_tls_creds_free(struct nbd_tls_creds *c)
{
	(void)c;
}

enum nbd_tls_mode nbd_tls_creds_mode(const struct nbd_tls_creds *c)
{
	(void)c;
	return NBD_TLS_OFF;
}

int nbd_tls_new(struct nbd_tls_creds *c, struct nbd_tls **out)
{
	(void)c;
	*out = NULL;
	return -ENOTSUP;
}

void nbd_tls_free(struct nbd_tls *t)
{
	(void)t;
}

int nbd_tls_io_new(struct aiol_loop *loop, int rfd, int wfd, struct nbd_tls *t,
		   struct nbd_tls_io **out)
{
	(void)loop;
	(void)rfd;
	(void)wfd;
	(void)t;
	*out = NULL;
	return -ENOTSUP;
}

void nbd_tls_io_free(struct nbd_tls_io *io)
{
	(void)io;
}

int nbd_io_start_tls(struct nbd_io *io, struct nbd_tls_creds *creds)
{
	(void)io;
	(void)creds;
	return -ENOTSUP;
}

bool nbd_io_is_tls(const struct nbd_io *io)
{
	(void)io;
	return false;
}

struct nbd_tls *nbd_io_take_tls(struct nbd_io *io)
{
	(void)io;
	return NULL;
}

void nbd_io_free_tls(struct nbd_io *io)
{
	(void)io;
}

int nbd_tls_handshake_sync(struct nbd_tls *t, const struct nbd_tls_sync *s)
{
	(void)t;
	(void)s;
	return -ENOTSUP;
}

ssize_t nbd_tls_recv_sync(struct nbd_tls *t, const struct nbd_tls_sync *s, void *buf, size_t len)
{
	(void)t;
	(void)s;
	(void)buf;
	(void)len;
	return -ENOTSUP;
}

ssize_t nbd_tls_send_sync(struct nbd_tls *t, const struct nbd_tls_sync *s, const void *buf,
			  size_t len)
{
	(void)t;
	(void)s;
	(void)buf;
	(void)len;
	return -ENOTSUP;
}

const char *nbd_tls_describe(struct nbd_tls *t)
{
	(void)t;
	return "no TLS support";
}

/* The ring driver: every operation fails at once, from the caller's
 * stack (no loop work exists to defer it to). */

void nbd_tls_io_close(struct nbd_tls_io *io, nbd_tls_io_cb cb, void *arg)
{
	(void)io;
	cb(arg, 0);
}

struct nbd_tls *nbd_tls_io_session(struct nbd_tls_io *io)
{
	(void)io;
	return NULL;
}

void nbd_tls_io_handshake(struct nbd_tls_io *io, nbd_tls_io_cb cb, void *arg)
{
	(void)io;
	cb(arg, -ENOTSUP);
}

void nbd_tls_io_read(struct nbd_tls_io *io, void *buf, size_t len, nbd_tls_io_cb cb, void *arg)
{
	(void)io;
	(void)buf;
	(void)len;
	cb(arg, -ENOTSUP);
}

void nbd_tls_io_recv(struct nbd_tls_io *io, void *buf, size_t len, nbd_tls_io_cb cb, void *arg)
{
	nbd_tls_io_read(io, buf, len, cb, arg);
}

void nbd_tls_io_set_read_deadline(struct nbd_tls_io *io, int64_t deadline_ms)
{
	(void)io;
	(void)deadline_ms;
}

void nbd_tls_io_cancel_read(struct nbd_tls_io *io)
{
	(void)io;
}

void nbd_tls_io_writev(struct nbd_tls_io *io, const struct iovec *iov, int iovcnt, nbd_tls_io_cb cb,
		       void *arg)
{
	(void)io;
	(void)iov;
	(void)iovcnt;
	cb(arg, -ENOTSUP);
}

bool nbd_tls_io_busy(const struct nbd_tls_io *io)
{
	(void)io;
	return false;
}

int nbd_transport_tls_new(struct aiol_loop *loop, int rfd, int wfd, struct nbd_tls *t,
			  struct nbd_transport **out)
{
	(void)loop;
	(void)rfd;
	(void)wfd;
	(void)t;
	*out = NULL;
	return -ENOTSUP;
}
