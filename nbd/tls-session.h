/* SPDX-License-Identifier: MIT */
/*
 * Private to the TLS files of nbd/ (built only with GnuTLS): the
 * credentials' and the session's insides, and the session's byte-level API
 * that the two drivers use (tls-sync.c on a negotiation thread, tls-ring.c
 * on a worker's ring).  The rest of nbd/ sees only tls.h.
 *
 * A session (tls-session.c) is GnuTLS over memory buffers.  It never
 * touches a socket: ciphertext received from the socket is put into its
 * input buffer (nbd_tls_in_space()/nbd_tls_in_commit()), ciphertext to send
 * is taken from its output buffer (nbd_tls_out_pending()/
 * nbd_tls_out_consume()).  Used by the thread that owns the connection only.
 */
#ifndef AIOLOOP_NBD_TLS_SESSION_H
#define AIOLOOP_NBD_TLS_SESSION_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tls.h"

#define NBD_TLS_RECORD_MAX 16384u /* plaintext per TLS record */

struct nbd_tls_creds {
	enum nbd_tls_mode mode;
	bool verify_peer;
	gnutls_certificate_credentials_t x509;
	gnutls_psk_server_credentials_t psk;
	gnutls_priority_t prio;
};

struct out_chunk {
	struct out_chunk *next;
	size_t rd, len, cap;
	uint8_t data[];
};

struct nbd_tls {
	gnutls_session_t s;
	struct nbd_tls_creds *c;
	uint8_t *in;
	size_t in_rd, in_wr;
	bool in_eof;
	struct out_chunk *out_head, *out_tail;
	size_t out_total;
	bool handshake_done;
	char desc[200];
};

/* Ciphertext in: where to receive (at least 1 byte while the session is not
 * stalled on output), then how many bytes arrived (0 = peer closed). */
size_t nbd_tls_in_space(struct nbd_tls *t, void **buf);
void nbd_tls_in_commit(struct nbd_tls *t, size_t n);
/* Copy bytes already read from the socket into the input (bytes a buffered
 * reader read past the STARTTLS option).  Returns 0 or -ENOBUFS. */
int nbd_tls_feed(struct nbd_tls *t, const void *buf, size_t len);

/* Ciphertext out: bytes waiting to be sent, and how many were sent. */
size_t nbd_tls_out_pending(struct nbd_tls *t, const void **buf);
void nbd_tls_out_consume(struct nbd_tls *t, size_t n);

/* Step the handshake: 0 done, -EAGAIN (feed input / drain output and call
 * again), -EACCES (peer certificate refused), -EPROTO (TLS failure). */
int nbd_tls_handshake(struct nbd_tls *t);
/* Plaintext read: bytes read (> 0), 0 at the peer's close_notify or EOF,
 * -EAGAIN when more ciphertext is needed, -EPROTO on a TLS error. */
ssize_t nbd_tls_read(struct nbd_tls *t, void *buf, size_t len);
/* Plaintext bytes already decrypted and ready for nbd_tls_read(). */
size_t nbd_tls_read_pending(struct nbd_tls *t);
/* Plaintext write: encrypts up to one record into the output buffer.
 * Returns the bytes consumed (> 0), -EAGAIN when the output buffer should
 * be drained first, -EPROTO on a TLS error. */
ssize_t nbd_tls_write(struct nbd_tls *t, const void *buf, size_t len);
/* Queue a close_notify alert into the output. */
void nbd_tls_bye(struct nbd_tls *t);

#endif
