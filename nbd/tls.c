// SPDX-License-Identifier: MIT
/*
 * TLS for the NBD server with GnuTLS over memory buffers (see tls.h).
 *
 * GnuTLS is given a push function that appends ciphertext to a list of
 * heap chunks (so a send SQE in flight on the head chunk never sees its
 * bytes move) and a pull function that reads from a flat input buffer that
 * the ring's recv completions fill.  Neither ever blocks: an empty input
 * gives EAGAIN to GnuTLS, which returns GNUTLS_E_AGAIN to us, and we
 * re-arm a recv.  Output is bounded: nbd_tls_write() refuses (-EAGAIN)
 * while more than OUT_SOFT bytes wait to be sent, and the push function
 * fails hard past OUT_HARD, which only a bug could reach.
 *
 * The driver (struct nbd_tls_io) runs everything from one deferred work
 * item, pump(), on the loop thread; completion callbacks are delivered one
 * per pump run, so a callback may start the next operation or close.
 *
 * Thread model: credentials are read-only after load and shared by all
 * threads; a session and its driver belong to the connection's thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "nbd/internal.h"
#include "nbd/tls.h"

int nbd_tls_mode_parse(const char *s, enum nbd_tls_mode *out)
{
	if (!strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "0"))
		*out = NBD_TLS_OFF;
	else if (!strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "1"))
		*out = NBD_TLS_ON;
	else if (!strcmp(s, "require") || !strcmp(s, "required") || !strcmp(s, "force"))
		*out = NBD_TLS_REQUIRE;
	else
		return -EINVAL;
	return 0;
}

#ifdef HAVE_GNUTLS

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <liburing.h>

#define REC_MAX 16384u			/* plaintext per TLS record */
#define IN_CAP (2 * REC_MAX + 4096)	/* ciphertext input buffer */
#define OUT_CHUNK (32u * 1024)
#define OUT_SOFT (64u * 1024)
#define OUT_HARD (1024u * 1024)
#define PRIO_X509 "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define PRIO_PSK PRIO_X509 ":+ECDHE-PSK:+DHE-PSK:+PSK"

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

bool nbd_tls_available(void)
{
	return true;
}

/* ---- credentials ---- */

static int dir_file(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* A psktool file: lines "identity:hexkey".  Checked here so that a bad file
 * fails at startup, not at each handshake (GnuTLS reads it lazily). */
static int psk_file_check(const char *path)
{
	FILE *f = fopen(path, "re");
	char line[1024];
	int n = 0, ret = 0;

	if (!f) {
		ret = -errno;
		aiol_err("--tls-psk %s: %m", path);
		return ret;
	}
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		size_t hex;

		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		hex = colon ? strlen(colon + 1) : 0;
		if (!colon || colon == line || hex == 0 || hex % 2 ||
		    strspn(colon + 1, "0123456789abcdefABCDEF") != hex) {
			aiol_err("--tls-psk %s: line %d is not 'identity:hexkey'", path, n + 1);
			ret = -EINVAL;
			goto out;
		}
		n++;
	}
	if (!n) {
		aiol_err("--tls-psk %s: no keys", path);
		ret = -EINVAL;
	}
out:
	fclose(f);
	return ret;
}

static int load_x509(struct nbd_tls_creds *c, const char *dir, bool verify_peer)
{
	char path[4096];
	int ret;

	ret = gnutls_certificate_allocate_credentials(&c->x509);
	if (ret < 0)
		goto gnutls_fail;
	if (dir_file(path, sizeof(path), dir, "ca-cert.pem") < 0)
		return -ENAMETOOLONG;
	if (access(path, R_OK) == 0) {
		ret = gnutls_certificate_set_x509_trust_file(c->x509, path, GNUTLS_X509_FMT_PEM);
		if (ret < 0) {
			aiol_err("%s: %s", path, gnutls_strerror(ret));
			return -EINVAL;
		}
		if (dir_file(path, sizeof(path), dir, "ca-crl.pem") == 0 && access(path, R_OK) == 0) {
			ret = gnutls_certificate_set_x509_crl_file(c->x509, path,
								   GNUTLS_X509_FMT_PEM);
			if (ret < 0) {
				aiol_err("%s: %s", path, gnutls_strerror(ret));
				return -EINVAL;
			}
		}
	} else if (verify_peer) {
		aiol_err("--tls-verify-peer needs %s: %m", path);
		return -ENOENT;
	}

	{
		char key[4096];

		if (dir_file(path, sizeof(path), dir, "server-cert.pem") < 0 ||
		    dir_file(key, sizeof(key), dir, "server-key.pem") < 0)
			return -ENAMETOOLONG;
		if (access(path, R_OK) < 0 || access(key, R_OK) < 0) {
			ret = -errno;
			aiol_err("--tls-certificates %s: cannot read server-cert.pem and "
				 "server-key.pem: %m", dir);
			return ret;
		}
		ret = gnutls_certificate_set_x509_key_file(c->x509, path, key,
							   GNUTLS_X509_FMT_PEM);
		if (ret < 0) {
			aiol_err("%s, %s: %s", path, key, gnutls_strerror(ret));
			return -EINVAL;
		}
	}
	gnutls_certificate_set_known_dh_params(c->x509, GNUTLS_SEC_PARAM_MEDIUM);
	return 0;

gnutls_fail:
	aiol_err("gnutls: %s", gnutls_strerror(ret));
	return -ENOMEM;
}

int nbd_tls_creds_load(const struct nbd_tls_opts *opts, struct nbd_tls_creds **out)
{
	struct nbd_tls_creds *c;
	const char *prio;
	const char *errpos = NULL;
	int ret;

	*out = NULL;
	if (opts->mode == NBD_TLS_OFF)
		return 0;
	if (!!opts->cert_dir == !!opts->psk_file) {
		aiol_err("--tls=%s needs either --tls-certificates DIR or --tls-psk FILE",
			 opts->mode == NBD_TLS_REQUIRE ? "require" : "on");
		return -EINVAL;
	}
	if (opts->verify_peer && !opts->cert_dir) {
		aiol_err("--tls-verify-peer needs --tls-certificates (with ca-cert.pem)");
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->mode = opts->mode;
	c->verify_peer = opts->verify_peer;
	if (opts->cert_dir) {
		ret = load_x509(c, opts->cert_dir, opts->verify_peer);
		if (ret < 0)
			goto err;
	} else {
		ret = psk_file_check(opts->psk_file);
		if (ret < 0)
			goto err;
		ret = gnutls_psk_allocate_server_credentials(&c->psk);
		if (ret == 0)
			ret = gnutls_psk_set_server_credentials_file(c->psk, opts->psk_file);
		if (ret < 0) {
			aiol_err("--tls-psk %s: %s", opts->psk_file, gnutls_strerror(ret));
			ret = -EINVAL;
			goto err;
		}
		gnutls_psk_set_server_known_dh_params(c->psk, GNUTLS_SEC_PARAM_MEDIUM);
	}
	prio = opts->priority ? opts->priority : opts->psk_file ? PRIO_PSK : PRIO_X509;
	ret = gnutls_priority_init(&c->prio, prio, &errpos);
	if (ret < 0) {
		aiol_err("TLS priority '%s' (at '%s'): %s", prio, errpos ? errpos : "",
			 gnutls_strerror(ret));
		ret = -EINVAL;
		goto err;
	}
	*out = c;
	return 0;

err:
	nbd_tls_creds_free(c);
	return ret;
}

void nbd_tls_creds_free(struct nbd_tls_creds *c)
{
	if (!c)
		return;
	if (c->prio)
		gnutls_priority_deinit(c->prio);
	if (c->x509)
		gnutls_certificate_free_credentials(c->x509);
	if (c->psk)
		gnutls_psk_free_server_credentials(c->psk);
	free(c);
}

enum nbd_tls_mode nbd_tls_creds_mode(const struct nbd_tls_creds *c)
{
	return c ? c->mode : NBD_TLS_OFF;
}

/* ---- transport callbacks (memory buffers) ---- */

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
	} else if (t->in_rd && IN_CAP - t->in_wr < REC_MAX) {
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
	if (len > REC_MAX)
		len = REC_MAX;
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

/* ---- blocking use on a negotiation thread ---- */

static int sync_wait(const struct nbd_tls_sync *s, int fd, short events)
{
	return nbd_poll_wait(fd, events, s->stop_fd, s->timeout_ms, s->deadline_ms);
}

/* Send every pending ciphertext byte. */
static int sync_flush(struct nbd_tls *t, const struct nbd_tls_sync *s)
{
	const void *buf;
	size_t len;

	while ((len = nbd_tls_out_pending(t, &buf))) {
		ssize_t n = send(s->wfd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		int ret;

		if (n < 0 && errno == ENOTSOCK)
			n = write(s->wfd, buf, len);
		if (n > 0) {
			nbd_tls_out_consume(t, (size_t)n);
			continue;
		}
		if (n == 0)
			return -EIO;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		ret = sync_wait(s, s->wfd, POLLOUT);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Receive some ciphertext (waiting for it). */
static int sync_fill(struct nbd_tls *t, const struct nbd_tls_sync *s)
{
	for (;;) {
		void *buf;
		size_t space = nbd_tls_in_space(t, &buf);
		ssize_t n;
		int ret;

		if (!space)
			return -ENOBUFS;
		ret = sync_wait(s, s->rfd, POLLIN);
		if (ret < 0)
			return ret;
		n = recv(s->rfd, buf, space, MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = read(s->rfd, buf, space);
		if (n >= 0) {
			nbd_tls_in_commit(t, (size_t)n);
			return n ? 0 : -ECONNRESET;
		}
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
}

int nbd_tls_handshake_sync(struct nbd_tls *t, const struct nbd_tls_sync *s)
{
	for (;;) {
		int ret = nbd_tls_handshake(t);
		int fret = sync_flush(t, s);

		if (ret != -EAGAIN)
			return ret;
		if (fret < 0)
			return fret;
		fret = sync_fill(t, s);
		if (fret < 0)
			return fret;
	}
}

ssize_t nbd_tls_recv_sync(struct nbd_tls *t, const struct nbd_tls_sync *s, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = nbd_tls_read(t, buf, len);
		int ret;

		/* A key update may have queued a reply. */
		ret = sync_flush(t, s);
		if (n != -EAGAIN)
			return n;
		if (ret < 0)
			return ret;
		ret = sync_fill(t, s);
		if (ret == -ECONNRESET)
			return 0;
		if (ret < 0)
			return ret;
	}
}

ssize_t nbd_tls_send_sync(struct nbd_tls *t, const struct nbd_tls_sync *s, const void *buf,
			  size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = nbd_tls_write(t, (const uint8_t *)buf + done, len - done);
		int ret;

		if (n > 0)
			done += (size_t)n;
		else if (n != -EAGAIN)
			return n;
		ret = sync_flush(t, s);
		if (ret < 0)
			return ret;
	}
	return (ssize_t)len;
}

/* ---- negotiation glue ---- */

static struct nbd_tls_sync sync_of(const struct nbd_io *io)
{
	return (struct nbd_tls_sync){
		.rfd = io->rfd,
		.wfd = io->wfd,
		.stop_fd = io->stop_fd,
		.timeout_ms = io->timeout_ms,
		.deadline_ms = io->deadline_ms,
	};
}

static ssize_t tls_io_recv(struct nbd_io *io, void *buf, size_t len)
{
	struct nbd_tls_sync s = sync_of(io);

	return nbd_tls_recv_sync(io->priv, &s, buf, len);
}

static ssize_t tls_io_send(struct nbd_io *io, const void *buf, size_t len)
{
	struct nbd_tls_sync s = sync_of(io);

	return nbd_tls_send_sync(io->priv, &s, buf, len);
}

static const struct nbd_io_ops nbd_io_tls = {
	.recv = tls_io_recv,
	.send = tls_io_send,
};

int nbd_io_start_tls(struct nbd_io *io, struct nbd_tls_creds *creds)
{
	struct nbd_tls_sync s = sync_of(io);
	struct nbd_tls *t;
	int ret;

	ret = nbd_tls_new(creds, &t);
	if (ret < 0)
		return ret;
	ret = nbd_tls_handshake_sync(t, &s);
	if (ret < 0) {
		aiol_info("nbd: TLS handshake with a client failed: %s", strerror(-ret));
		nbd_tls_free(t);
		return ret;
	}
	aiol_debug("nbd: TLS: %s", nbd_tls_describe(t));
	io->ops = &nbd_io_tls;
	io->priv = t;
	return 0;
}

bool nbd_io_is_tls(const struct nbd_io *io)
{
	return io->ops == &nbd_io_tls;
}

struct nbd_tls *nbd_io_take_tls(struct nbd_io *io)
{
	struct nbd_tls *t = nbd_io_is_tls(io) ? io->priv : NULL;

	if (t) {
		io->priv = NULL;
		io->ops = NULL;
	}
	return t;
}

void nbd_io_free_tls(struct nbd_io *io)
{
	nbd_tls_free(nbd_io_take_tls(io));
}

/* ---- driver over one fd on an aiol_loop ---- */

struct nbd_tls_io {
	struct aiol_loop *loop;
	int rfd, wfd;
	bool rsock, wsock;	/* RECV/SEND, else READ/WRITE (pipes) */
	struct nbd_tls *t;
	struct aiol_event recv_ev, send_ev;
	struct aiol_work work;
	bool recv_inflight, send_inflight;
	int err;		/* sticky: every operation fails with it */

	bool hs_active;
	nbd_tls_io_cb hs_cb;
	void *hs_arg;

	bool rd_active, rd_some, rd_cancel;
	int64_t rd_deadline_ms;	/* CLOCK_MONOTONIC; 0: none */
	struct __kernel_timespec rd_ts;
	uint8_t *rd_buf;
	size_t rd_len, rd_done;
	nbd_tls_io_cb rd_cb;
	void *rd_arg;

	bool wr_active;
	const struct iovec *wr_iov;
	int wr_cnt, wr_idx;
	size_t wr_off, wr_total;
	nbd_tls_io_cb wr_cb;
	void *wr_arg;
	uint8_t *stage;		/* plaintext gathered into one record */
	size_t stage_len, stage_off;

	bool closing, close_done;
	nbd_tls_io_cb close_cb;
	void *close_arg;
};

#define RUNNING INT_MIN		/* an operation's result while it runs */
#define IO_OF(p, member) aiol_container_of(p, struct nbd_tls_io, member)

static void io_kick(struct nbd_tls_io *io)
{
	aiol_loop_defer(io->loop, &io->work);
}

static void io_recv_done(struct aiol_event *ev, int res, unsigned int flags)
{
	struct nbd_tls_io *io = IO_OF(ev, recv_ev);

	(void)flags;
	io->recv_inflight = false;
	if (res > 0)
		nbd_tls_in_commit(io->t, (size_t)res);
	else if (res == 0)
		nbd_tls_in_commit(io->t, 0);
	else if (res != -EINTR && res != -EAGAIN && !io->err)
		io->err = res == -ECANCELED ? -ECANCELED : -ECONNRESET;
	io_kick(io);
}

static void io_send_done(struct aiol_event *ev, int res, unsigned int flags)
{
	struct nbd_tls_io *io = IO_OF(ev, send_ev);

	(void)flags;
	io->send_inflight = false;
	if (res > 0)
		nbd_tls_out_consume(io->t, (size_t)res);
	else if (res != -EINTR && res != -EAGAIN && !io->err)
		io->err = res == 0 ? -EIO : res;
	io_kick(io);
}

/* Move plaintext from the write iovecs into TLS records.  Returns true when
 * all of it has been accepted, false when output must drain first. */
static bool io_write_some(struct nbd_tls_io *io)
{
	for (;;) {
		ssize_t n;

		if (io->stage_off == io->stage_len) {
			io->stage_len = io->stage_off = 0;
			while (io->wr_idx < io->wr_cnt && io->stage_len < REC_MAX) {
				const struct iovec *v = &io->wr_iov[io->wr_idx];
				size_t take = v->iov_len - io->wr_off;

				if (!v->iov_len) {
					io->wr_idx++;
					continue;
				}

				if (take > REC_MAX - io->stage_len)
					take = REC_MAX - io->stage_len;
				memcpy(io->stage + io->stage_len, (const uint8_t *)v->iov_base + io->wr_off,
				       take);
				io->stage_len += take;
				io->wr_off += take;
				if (io->wr_off == v->iov_len) {
					io->wr_idx++;
					io->wr_off = 0;
				}
			}
			if (!io->stage_len)
				return true;
		}
		n = nbd_tls_write(io->t, io->stage + io->stage_off, io->stage_len - io->stage_off);
		if (n == -EAGAIN)
			return false;
		if (n < 0) {
			io->err = (int)n;
			return false;
		}
		io->stage_off += (size_t)n;
	}
}

/* Deliver one completion; returns true if one was delivered (the caller
 * must then stop touching io: the callback may have closed it). */
static bool io_complete_one(struct nbd_tls_io *io, int err_hs, int res_rd, int res_wr)
{
	nbd_tls_io_cb cb;
	void *arg;

	if (err_hs != RUNNING && io->hs_active && (err_hs < 0 || io->t->handshake_done)) {
		io->hs_active = false;
		cb = io->hs_cb;
		arg = io->hs_arg;
		cb(arg, err_hs);
		return true;
	}
	if (res_rd != RUNNING && io->rd_active) {
		io->rd_active = false;
		cb = io->rd_cb;
		arg = io->rd_arg;
		cb(arg, res_rd);
		return true;
	}
	if (res_wr != RUNNING && io->wr_active) {
		io->wr_active = false;
		cb = io->wr_cb;
		arg = io->wr_arg;
		cb(arg, res_wr);
		return true;
	}
	return false;
}

static void pump(struct aiol_work *w)
{
	struct nbd_tls_io *io = IO_OF(w, work);
	bool need_input = false;
	int hs = RUNNING, rd = RUNNING, wr = RUNNING;
	const void *obuf;
	size_t olen;

	if (io->closing && !io->recv_inflight && !io->send_inflight && !io->hs_active &&
	    !io->rd_active && !io->wr_active) {
		if (!io->close_done) {
			io->close_done = true;
			io->close_cb(io->close_arg, 0);
		}
		return;
	}
	if (io->err) {
		if (io_complete_one(io, io->err, io->err, io->err))
			io_kick(io);
		return;
	}

	if (io->hs_active) {
		int r = nbd_tls_handshake(io->t);

		if (r == 0)
			hs = 0;
		else if (r == -EAGAIN)
			need_input = true;
		else
			io->err = hs = r;
	}
	if (io->rd_active && io->rd_cancel) {
		rd = -ECANCELED;
	} else if (io->rd_active && io->t->handshake_done && !io->err) {
		while (io->rd_done < io->rd_len && !(io->rd_some && io->rd_done)) {
			ssize_t n = nbd_tls_read(io->t, io->rd_buf + io->rd_done,
						 io->rd_len - io->rd_done);

			if (n > 0) {
				io->rd_done += (size_t)n;
				continue;
			}
			if (n == -EAGAIN)
				need_input = true;
			else if (n == 0 && io->rd_some)
				rd = 0;		/* end of stream: recv() returns 0 */
			else
				io->err = rd = n == 0 ? -ECONNRESET : (int)n;
			break;
		}
		if (io->rd_done == io->rd_len || (io->rd_some && io->rd_done))
			rd = io->rd_some ? (int)io->rd_done : 0;
	}
	if (io->wr_active && io->t->handshake_done && !io->err) {
		if (!io_write_some(io) && io->err)
			wr = io->err;
	}

	/* Ciphertext out.  A write completes once its bytes have left, so
	 * that closing after the last reply loses nothing. */
	olen = nbd_tls_out_pending(io->t, &obuf);
	if (wr == RUNNING && io->wr_active && !olen && io->stage_off == io->stage_len &&
	    io->wr_idx == io->wr_cnt)
		wr = (int)io->wr_total;
	if (olen && !io->send_inflight && !io->err) {
		struct io_uring_sqe *sqe = aiol_loop_sqe(io->loop, &io->send_ev);

		if (olen > INT_MAX)
			olen = INT_MAX;
		if (io->wsock)
			io_uring_prep_send(sqe, io->wfd, obuf, olen, MSG_NOSIGNAL);
		else
			io_uring_prep_write(sqe, io->wfd, obuf, (unsigned int)olen, (uint64_t)-1);
		io->send_inflight = true;
	}
	/* Ciphertext in, only when someone waits for it (back-pressure). */
	if (need_input && !io->recv_inflight && !io->err) {
		void *ibuf;
		size_t ilen = nbd_tls_in_space(io->t, &ibuf);

		if (io->t->in_eof) {
			io->err = -ECONNRESET;
		} else if (ilen) {
			nbd_post_recv(io->loop, &io->recv_ev, io->rfd, io->rsock, ibuf, ilen,
				      io->rd_active ? io->rd_deadline_ms : 0, &io->rd_ts);
			io->recv_inflight = true;
		}
	}
	if (io->err) {
		io_kick(io);
		return;
	}
	if (io_complete_one(io, hs, rd, wr))
		io_kick(io);
}

int nbd_tls_io_new(struct aiol_loop *loop, int rfd, int wfd, struct nbd_tls *t,
		   struct nbd_tls_io **out)
{
	struct nbd_tls_io *io = calloc(1, sizeof(*io));
	struct stat st;

	if (!io)
		return -ENOMEM;
	io->stage = malloc(REC_MAX);
	if (!io->stage) {
		free(io);
		return -ENOMEM;
	}
	io->loop = loop;
	io->rfd = rfd;
	io->wfd = wfd;
	io->rsock = fstat(rfd, &st) == 0 && S_ISSOCK(st.st_mode);
	io->wsock = fstat(wfd, &st) == 0 && S_ISSOCK(st.st_mode);
	io->t = t;
	io->recv_ev.fn = io_recv_done;
	io->send_ev.fn = io_send_done;
	io->work.fn = pump;
	*out = io;
	return 0;
}

void nbd_tls_io_close(struct nbd_tls_io *io, nbd_tls_io_cb cb, void *arg)
{
	struct io_uring_sqe *sqe;

	io->closing = true;
	io->close_cb = cb;
	io->close_arg = arg;
	if (!io->err && !io->send_inflight && io->wsock && io->t->handshake_done &&
	    !nbd_tls_out_pending(io->t, &(const void *){ NULL })) {
		const void *buf;
		size_t len;
		ssize_t n;

		/* A close_notify if the socket takes it now; never waits. */
		nbd_tls_bye(io->t);
		len = nbd_tls_out_pending(io->t, &buf);
		n = len ? send(io->wfd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) : 0;
		if (n > 0)
			nbd_tls_out_consume(io->t, (size_t)n);
	}
	if (!io->err)
		io->err = -ECANCELED;
	if (io->recv_inflight) {
		sqe = aiol_loop_sqe(io->loop, NULL);
		io_uring_prep_cancel(sqe, &io->recv_ev, 0);
	}
	if (io->send_inflight) {
		sqe = aiol_loop_sqe(io->loop, NULL);
		io_uring_prep_cancel(sqe, &io->send_ev, 0);
	}
	io_kick(io);
}

void nbd_tls_io_free(struct nbd_tls_io *io)
{
	if (!io)
		return;
	nbd_tls_free(io->t);
	free(io->stage);
	free(io);
}

struct nbd_tls *nbd_tls_io_session(struct nbd_tls_io *io)
{
	return io->t;
}

bool nbd_tls_io_busy(const struct nbd_tls_io *io)
{
	return io->recv_inflight || io->send_inflight;
}

void nbd_tls_io_handshake(struct nbd_tls_io *io, nbd_tls_io_cb cb, void *arg)
{
	io->hs_active = true;
	io->hs_cb = cb;
	io->hs_arg = arg;
	io_kick(io);
}

void nbd_tls_io_read(struct nbd_tls_io *io, void *buf, size_t len, nbd_tls_io_cb cb, void *arg)
{
	io->rd_active = true;
	io->rd_some = false;
	io->rd_cancel = false;
	io->rd_buf = buf;
	io->rd_len = len;
	io->rd_done = 0;
	io->rd_cb = cb;
	io->rd_arg = arg;
	io_kick(io);
}

void nbd_tls_io_recv(struct nbd_tls_io *io, void *buf, size_t len, nbd_tls_io_cb cb, void *arg)
{
	nbd_tls_io_read(io, buf, len, cb, arg);
	io->rd_some = true;
}

void nbd_tls_io_set_read_deadline(struct nbd_tls_io *io, int64_t deadline_ms)
{
	io->rd_deadline_ms = deadline_ms;
}

void nbd_tls_io_cancel_read(struct nbd_tls_io *io)
{
	if (io->rd_active) {
		io->rd_cancel = true;
		io_kick(io);
	}
}

void nbd_tls_io_writev(struct nbd_tls_io *io, const struct iovec *iov, int iovcnt,
		       nbd_tls_io_cb cb, void *arg)
{
	io->wr_active = true;
	io->wr_cb = cb;
	io->wr_arg = arg;
	io->wr_iov = iov;
	io->wr_cnt = iovcnt;
	io->wr_idx = 0;
	io->wr_off = 0;
	io->wr_total = 0;
	for (int i = 0; i < iovcnt; i++)
		io->wr_total += iov[i].iov_len;
	if (io->wr_total > INT_MAX && !io->err)
		io->err = -EINVAL;
	io_kick(io);
}

#else /* !HAVE_GNUTLS */

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

/* Without GnuTLS no session can exist (nbd_tls_new() refuses), so the
 * functions below are never reached with a live session; they keep every
 * declaration of tls.h defined, so that callers build unchanged. */

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

size_t nbd_tls_in_space(struct nbd_tls *t, void **buf)
{
	(void)t;
	*buf = NULL;
	return 0;
}

void nbd_tls_in_commit(struct nbd_tls *t, size_t n)
{
	(void)t;
	(void)n;
}

int nbd_tls_feed(struct nbd_tls *t, const void *buf, size_t len)
{
	(void)t;
	(void)buf;
	(void)len;
	return -ENOTSUP;
}

size_t nbd_tls_out_pending(struct nbd_tls *t, const void **buf)
{
	(void)t;
	*buf = NULL;
	return 0;
}

void nbd_tls_out_consume(struct nbd_tls *t, size_t n)
{
	(void)t;
	(void)n;
}

int nbd_tls_handshake(struct nbd_tls *t)
{
	(void)t;
	return -ENOTSUP;
}

ssize_t nbd_tls_read(struct nbd_tls *t, void *buf, size_t len)
{
	(void)t;
	(void)buf;
	(void)len;
	return -ENOTSUP;
}

size_t nbd_tls_read_pending(struct nbd_tls *t)
{
	(void)t;
	return 0;
}

ssize_t nbd_tls_write(struct nbd_tls *t, const void *buf, size_t len)
{
	(void)t;
	(void)buf;
	(void)len;
	return -ENOTSUP;
}

void nbd_tls_bye(struct nbd_tls *t)
{
	(void)t;
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

void nbd_tls_io_writev(struct nbd_tls_io *io, const struct iovec *iov, int iovcnt,
		       nbd_tls_io_cb cb, void *arg)
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

#endif
