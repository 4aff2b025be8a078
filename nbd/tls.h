/* SPDX-License-Identifier: MIT */
/*
 * TLS for the NBD server (STARTTLS, NBD_OPT_STARTTLS), with GnuTLS.
 *
 * The layers, one file each, each using only those above it:
 *
 *  - tls-mode.c: --tls=MODE parsing (built with or without GnuTLS).
 *  - tls-creds.c, struct nbd_tls_creds: the server's credentials, loaded
 *    once at startup from --tls-certificates DIR or --tls-psk FILE.
 *    Shared read-only by all threads.
 *  - tls-session.c, struct nbd_tls: one connection's session, GnuTLS over
 *    memory buffers; it never touches a socket (tls-session.h, private).
 *  - tls-sync.c: a blocking driver of a session on a negotiation thread,
 *    and the STARTTLS glue that swaps struct nbd_io (handshake-io.h) to it.
 *  - tls-ring.c, struct nbd_tls_io: a driver of a session on a worker's
 *    ring (exact-length plaintext reads and writes with callbacks, the
 *    handshake), and the TLS struct nbd_transport (transport.h) over it.
 *
 * Without GnuTLS, tls-none.c defines every function below, failing.
 *
 * All functions return 0 / a byte count or -errno.  Per-connection objects
 * are used from the thread that owns the connection only.
 */
#ifndef AIOLOOP_NBD_TLS_H
#define AIOLOOP_NBD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "aioloop/loop.h"

enum nbd_tls_mode {
	NBD_TLS_OFF = 0,	/* NOTLS: STARTTLS gets ERR_POLICY */
	NBD_TLS_ON,		/* SELECTIVETLS-ish: STARTTLS offered, not required */
	NBD_TLS_REQUIRE,	/* FORCEDTLS: every option before STARTTLS gets ERR_TLS_REQD */
};

struct nbd_tls_opts {
	enum nbd_tls_mode mode;
	const char *cert_dir;	/* --tls-certificates */
	const char *psk_file;	/* --tls-psk */
	bool verify_peer;	/* --tls-verify-peer: client certificate required */
	const char *priority;	/* NULL: TLS 1.2/1.3 only, PSK kx added for PSK */
};

struct nbd_tls_creds;
struct nbd_tls;

/* Parse "off|on|require" (also "no|yes|0|1").  Returns 0 or -EINVAL. */
int nbd_tls_mode_parse(const char *s, enum nbd_tls_mode *out);

/* True when this build has TLS support. */
bool nbd_tls_available(void);

/*
 * Load credentials.  mode OFF gives *out = NULL and returns 0.  Otherwise
 * exactly one of cert_dir / psk_file must be set; a missing or unreadable
 * file is logged by name and gives -errno (-EINVAL for bad contents,
 * -ENOTSUP without GnuTLS).  Control path (blocking file reads).
 */
int nbd_tls_creds_load(const struct nbd_tls_opts *opts, struct nbd_tls_creds **out);
void nbd_tls_creds_free(struct nbd_tls_creds *c);
enum nbd_tls_mode nbd_tls_creds_mode(const struct nbd_tls_creds *c);

/* A server session for one connection.  Returns 0 or -ENOMEM/-EINVAL. */
int nbd_tls_new(struct nbd_tls_creds *c, struct nbd_tls **out);
void nbd_tls_free(struct nbd_tls *t);

/* ---- blocking use on a negotiation thread ---- */

/* The fds to use, how long one wait may last (<= 0: forever) and an fd
 * that, once readable, aborts the wait with -ESHUTDOWN (-1: none). */
struct nbd_tls_sync {
	int rfd, wfd;
	int stop_fd;
	int timeout_ms;
	int64_t deadline_ms;	/* CLOCK_MONOTONIC ms after which waits fail; 0: none */
};

/* The whole handshake: 0, -ETIMEDOUT, -ESHUTDOWN, -EACCES, -EPROTO. */
int nbd_tls_handshake_sync(struct nbd_tls *t, const struct nbd_tls_sync *s);
/* Like recv(): > 0 bytes, 0 end of stream, -errno. */
ssize_t nbd_tls_recv_sync(struct nbd_tls *t, const struct nbd_tls_sync *s, void *buf,
			  size_t len);
/* Send all of buf (encrypted, and flushed to the fd): len or -errno. */
ssize_t nbd_tls_send_sync(struct nbd_tls *t, const struct nbd_tls_sync *s, const void *buf,
			  size_t len);

/* ---- glue for the negotiation code (handshake.c, struct nbd_io) ---- */

struct nbd_io;
/* After the STARTTLS ACK: run the TLS handshake on io's fds within io's
 * timeouts and switch io's byte I/O to TLS.  0 or -errno (the caller then
 * hard-disconnects). */
int nbd_io_start_tls(struct nbd_io *io, struct nbd_tls_creds *creds);
bool nbd_io_is_tls(const struct nbd_io *io);
/* Hand the session over (to the transmission phase) or free it; io must
 * not be used for I/O afterwards. */
struct nbd_tls *nbd_io_take_tls(struct nbd_io *io);
void nbd_io_free_tls(struct nbd_io *io);

/* Description of the negotiated session for the log ("TLS1.3 ...") or
 * of the PSK identity; valid until nbd_tls_free(). */
const char *nbd_tls_describe(struct nbd_tls *t);

/* ---- driver over one fd pair on an aiol_loop (tls-ring.c) ---- */

typedef void (*nbd_tls_io_cb)(void *arg, int res);

/*
 * struct nbd_tls_io owns the session (nbd_tls_io_free() frees it), not the
 * fd.  At most one read, one write and the handshake are outstanding at
 * once.  Callbacks run on the loop thread from deferred work, never inside
 * the call that started the operation; res is 0 (the whole length done) or
 * -errno (-ECONNRESET when the peer closed, -EPROTO on a TLS error).
 * After an error every outstanding and later operation fails with it.
 */
struct nbd_tls_io;

/* rfd and wfd may be the same socket, or pipes. */
int nbd_tls_io_new(struct aiol_loop *loop, int rfd, int wfd, struct nbd_tls *t,
		   struct nbd_tls_io **out);
/* Fail outstanding operations with -ECANCELED, cancel the socket SQEs, and
 * run cb once none is in flight any more; only then may the caller free io
 * and close the fd. */
void nbd_tls_io_close(struct nbd_tls_io *io, nbd_tls_io_cb cb, void *arg);
void nbd_tls_io_free(struct nbd_tls_io *io);
struct nbd_tls *nbd_tls_io_session(struct nbd_tls_io *io);

void nbd_tls_io_handshake(struct nbd_tls_io *io, nbd_tls_io_cb cb, void *arg);
/* Read exactly len plaintext bytes: res 0, or -ECONNRESET at end of
 * stream. */
void nbd_tls_io_read(struct nbd_tls_io *io, void *buf, size_t len, nbd_tls_io_cb cb,
		     void *arg);
/* Like recv(): res is the byte count (> 0), 0 at end of stream, -errno. */
void nbd_tls_io_recv(struct nbd_tls_io *io, void *buf, size_t len, nbd_tls_io_cb cb,
		     void *arg);
/* Reads started from now on fail with -ECANCELED if no ciphertext arrives
 * before deadline_ms (CLOCK_MONOTONIC milliseconds; 0: no deadline). */
void nbd_tls_io_set_read_deadline(struct nbd_tls_io *io, int64_t deadline_ms);
/* Complete an outstanding read or recv with -ECANCELED. */
void nbd_tls_io_cancel_read(struct nbd_tls_io *io);
/* Write all of iov (the array and the buffers stay the caller's and must
 * live until cb); res is the total byte count once the ciphertext has been
 * sent, or -errno. */
void nbd_tls_io_writev(struct nbd_tls_io *io, const struct iovec *iov, int iovcnt,
		       nbd_tls_io_cb cb, void *arg);
/* True while SQEs on the fd are in flight. */
bool nbd_tls_io_busy(const struct nbd_tls_io *io);

/* The TLS transport (transport.h) of a connection leaving negotiation
 * with session t, over rfd/wfd on loop: takes the fds and t (freed with
 * the transport).  0, or -ENOMEM/-ENOTSUP with nothing taken. */
struct nbd_transport;
int nbd_transport_tls_new(struct aiol_loop *loop, int rfd, int wfd, struct nbd_tls *t,
			  struct nbd_transport **out);

#endif
