// SPDX-License-Identifier: MIT
/*
 * One connection's TLS session: GnuTLS over memory buffers (tls-session.h).
 *
 * GnuTLS is given a push function that appends ciphertext to a list of
 * heap chunks (so a send SQE in flight on the head chunk never sees its
 * bytes move) and a pull function that reads from a flat input buffer that
 * the drivers' receives fill.  Neither ever blocks: an empty input gives
 * EAGAIN to GnuTLS, which returns GNUTLS_E_AGAIN to us, and the driver
 * receives more.  Output is bounded: nbd_tls_write() refuses (-EAGAIN)
 * while more than OUT_SOFT bytes wait to be sent, and the push function
 * fails hard past OUT_HARD, which only a bug could reach.
 *
 * Thread model: a session belongs to the thread of its connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "aioloop/log.h"
#include "tls-session.h"

#define IN_CAP (2 * NBD_TLS_RECORD_MAX + 4096) /* ciphertext input buffer */
#define OUT_CHUNK (32u * 1024)
#define OUT_SOFT (64u * 1024)
#define OUT_HARD (1024u * 1024)

/* ---- GnuTLS push/pull over the memory buffers ---- */

static ssize_t tls_push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
	struct nbd_tls *t = p;
	struct out_chunk *tail = t->out_tail;

	if (len > OUT_HARD || t->out_total > OUT_HARD - len) {
		gnutls_transport_set_errno(t->s, ENOBUFS);
		return -1;
	}
	if (!tail || tail->cap - tail->len < len) {
		size_t cap = len > OUT_CHUNK ? len : OUT_CHUNK;

		tail = malloc(sizeof(*tail) + cap);
		if (!tail) {
			gnutls_transport_set_errno(t->s, ENOMEM);
			return -1;
		}
		tail->next = NULL;
		tail->rd = tail->len = 0;
		tail->cap = cap;
		if (t->out_tail)
			t->out_tail->next = tail;
		else
			t->out_head = tail;
		t->out_tail = tail;
	}
	memcpy(tail->data + tail->len, data, len);
	tail->len += len;
	t->out_total += len;
	return (ssize_t)len;
}

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
	struct nbd_tls *t = p;
	size_t avail = t->in_wr - t->in_rd;

	if (!avail) {
		if (t->in_eof)
			return 0;
		gnutls_transport_set_errno(t->s, EAGAIN);
		return -1;
	}
	if (len > avail)
		len = avail;
	memcpy(data, t->in + t->in_rd, len);
	t->in_rd += len;
	if (t->in_rd == t->in_wr)
		t->in_rd = t->in_wr = 0;
	return (ssize_t)len;
}

static int tls_pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
	struct nbd_tls *t = p;

	(void)ms;
	return t->in_wr > t->in_rd || t->in_eof ? 1 : 0;
}

/* ---- session ---- */

int nbd_tls_new(struct nbd_tls_creds *c, struct nbd_tls **out)
{
	struct nbd_tls *t;
	int ret;

	if (!c)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->c = c;
	t->in = malloc(IN_CAP);
	if (!t->in) {
		free(t);
		return -ENOMEM;
	}
	ret = gnutls_init(&t->s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (ret < 0)
		goto fail;
	ret = gnutls_priority_set(t->s, c->prio);
	if (ret < 0)
		goto fail;
	if (c->x509) {
		ret = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, c->x509);
		if (ret < 0)
			goto fail;
		if (c->verify_peer) {
			gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
			gnutls_session_set_verify_cert(t->s, NULL, 0);
		}
	}
	if (c->psk) {
		ret = gnutls_credentials_set(t->s, GNUTLS_CRD_PSK, c->psk);
		if (ret < 0)
			goto fail;
	}
	/* The connection's handshake deadline bounds the TLS handshake. */
	gnutls_handshake_set_timeout(t->s, 0);
	gnutls_transport_set_ptr(t->s, t);
	gnutls_transport_set_push_function(t->s, tls_push);
	gnutls_transport_set_pull_function(t->s, tls_pull);
	gnutls_transport_set_pull_timeout_function(t->s, tls_pull_timeout);
	*out = t;
	return 0;

fail:
	aiol_err("TLS session: %s", gnutls_strerror(ret));
	nbd_tls_free(t);
	return -EINVAL;
}

void nbd_tls_free(struct nbd_tls *t)
{
	struct out_chunk *ch;

	if (!t)
		return;
	if (t->s)
		gnutls_deinit(t->s);
	while ((ch = t->out_head)) {
		t->out_head = ch->next;
		free(ch);
	}
	free(t->in);
	free(t);
}

size_t nbd_tls_in_space(struct nbd_tls *t, void **buf)
{
	if (t->in_rd == t->in_wr) {
		t->in_rd = t->in_wr = 0;
	} else if (t->in_rd && IN_CAP - t->in_wr < NBD_TLS_RECORD_MAX) {
		memmove(t->in, t->in + t->in_rd, t->in_wr - t->in_rd);
		t->in_wr -= t->in_rd;
		t->in_rd = 0;
	}
	*buf = t->in + t->in_wr;
	return IN_CAP - t->in_wr;
}

void nbd_tls_in_commit(struct nbd_tls *t, size_t n)
{
	if (!n) {
		t->in_eof = true;
		return;
	}
	t->in_wr += n;
}

int nbd_tls_feed(struct nbd_tls *t, const void *buf, size_t len)
{
	void *dst;

	if (nbd_tls_in_space(t, &dst) < len)
		return -ENOBUFS;
	memcpy(dst, buf, len);
	nbd_tls_in_commit(t, len);
	return 0;
}

size_t nbd_tls_out_pending(struct nbd_tls *t, const void **buf)
{
	struct out_chunk *h = t->out_head;

	if (!h)
		return 0;
	*buf = h->data + h->rd;
	return h->len - h->rd;
}

void nbd_tls_out_consume(struct nbd_tls *t, size_t n)
{
	struct out_chunk *h = t->out_head;

	if (!h || n > h->len - h->rd)
		return;
	h->rd += n;
	t->out_total -= n;
	if (h->rd < h->len)
		return;
	if (h == t->out_tail) {
		h->rd = h->len = 0;
		return;
	}
	t->out_head = h->next;
	free(h);
}

static int tls_error(struct nbd_tls *t, const char *what, int ret)
{
	(void)t;
	switch (ret) {
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
	case GNUTLS_E_CERTIFICATE_ERROR:
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
	case GNUTLS_E_CERTIFICATE_REQUIRED:
	case GNUTLS_E_DECRYPTION_FAILED:
	case GNUTLS_E_INSUFFICIENT_CREDENTIALS:
		aiol_info("TLS %s refused: %s", what, gnutls_strerror(ret));
		return -EACCES;
	default:
		aiol_info("TLS %s failed: %s", what, gnutls_strerror(ret));
		return -EPROTO;
	}
}

int nbd_tls_handshake(struct nbd_tls *t)
{
	int ret;

	if (t->handshake_done)
		return 0;
	for (int tries = 0; tries < 16; tries++) {
		ret = gnutls_handshake(t->s);
		if (ret == GNUTLS_E_SUCCESS) {
			char *d = gnutls_session_get_desc(t->s);
			const char *user = t->c->psk ? gnutls_psk_server_get_username(t->s) : NULL;

			snprintf(t->desc, sizeof(t->desc), "%s%s%s", d ? d : "TLS",
				 user ? " psk identity " : "", user ? user : "");
			gnutls_free(d);
			t->handshake_done = true;
			return 0;
		}
		if (ret == GNUTLS_E_AGAIN)
			return -EAGAIN;
		if (ret != GNUTLS_E_INTERRUPTED && gnutls_error_is_fatal(ret))
			break;
	}
	return tls_error(t, "handshake", ret);
}

ssize_t nbd_tls_read(struct nbd_tls *t, void *buf, size_t len)
{
	ssize_t ret;

	for (int tries = 0; tries < 64; tries++) {
		ret = gnutls_record_recv(t->s, buf, len);
		if (ret >= 0)
			return ret;
		if (ret == GNUTLS_E_AGAIN)
			return -EAGAIN;
		if (ret == GNUTLS_E_PREMATURE_TERMINATION)
			return 0;
		if (ret == GNUTLS_E_REHANDSHAKE)
			return tls_error(t, "renegotiation", (int)ret);
		if (ret != GNUTLS_E_INTERRUPTED && gnutls_error_is_fatal((int)ret))
			break;
	}
	return tls_error(t, "read", (int)ret);
}

size_t nbd_tls_read_pending(struct nbd_tls *t)
{
	return gnutls_record_check_pending(t->s);
}

ssize_t nbd_tls_write(struct nbd_tls *t, const void *buf, size_t len)
{
	ssize_t ret;

	if (t->out_total > OUT_SOFT)
		return -EAGAIN;
	if (len > NBD_TLS_RECORD_MAX)
		len = NBD_TLS_RECORD_MAX;
	/* The push function never says EAGAIN, so a send never stops half
	 * way and never has to be repeated with the same arguments. */
	ret = gnutls_record_send(t->s, buf, len);
	if (ret > 0)
		return ret;
	return tls_error(t, "write", (int)ret);
}

void nbd_tls_bye(struct nbd_tls *t)
{
	if (t->handshake_done)
		gnutls_bye(t->s, GNUTLS_SHUT_WR);
}

const char *nbd_tls_describe(struct nbd_tls *t)
{
	return t->desc[0] ? t->desc : "TLS (handshake not done)";
}
