// SPDX-License-Identifier: MIT
/*
 * Unit tests of the TLS layers of nbd/ (tls-*.c): the server side (struct
 * nbd_tls_io on a real aiol_loop, over one end of a socketpair) against a
 * blocking GnuTLS client in a thread on the other end.  X.509 and PSK
 * handshakes, a 1 MiB echo in both directions through records of every
 * size, client certificates from the right and from a foreign CA with
 * --tls-verify-peer, a TLS 1.1-only client, and credential files that are
 * missing or malformed.
 * Certificates come from tests/harden/mkcerts.sh (certtool); without it
 * the program skips (test_skip_all()).
 */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "aioloop/log.h"
#include "aioloop/loop.h"
#include "cmocka-tap.h"
#include "nbd/tls.h"

static char certdir[256];

#define ECHO_BYTES (1u << 20)

struct client {
	int fd;
	const char *psk_user;	/* PSK client if set */
	const char *psk_key;	/* hex */
	const char *cert_dir;	/* client cert/key from here (NULL: none) */
	const char *prio;
	bool echo;
	int stall_ms;		/* after the handshake, wait this long, send nothing */
	int result;		/* 0 ok, else a gnutls error */
};

static void *client_thread(void *arg)
{
	struct client *c = arg;
	gnutls_session_t s;
	gnutls_certificate_credentials_t x = NULL;
	gnutls_psk_client_credentials_t p = NULL;
	uint8_t *out = NULL, *in = NULL;
	char a[512], b[512];
	int ret;

	gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL);
	if (c->psk_user) {
		gnutls_datum_t key = { (unsigned char *)c->psk_key, (unsigned int)strlen(c->psk_key) };

		gnutls_psk_allocate_client_credentials(&p);
		gnutls_psk_set_client_credentials(p, c->psk_user, &key, GNUTLS_PSK_KEY_HEX);
		gnutls_credentials_set(s, GNUTLS_CRD_PSK, p);
		gnutls_priority_set_direct(s, c->prio ? c->prio : "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK",
					   NULL);
	} else {
		gnutls_certificate_allocate_credentials(&x);
		snprintf(a, sizeof(a), "%s/ca-cert.pem", certdir);
		gnutls_certificate_set_x509_trust_file(x, a, GNUTLS_X509_FMT_PEM);
		if (c->cert_dir) {
			snprintf(a, sizeof(a), "%s/client-cert.pem", c->cert_dir);
			snprintf(b, sizeof(b), "%s/client-key.pem", c->cert_dir);
			gnutls_certificate_set_x509_key_file(x, a, b, GNUTLS_X509_FMT_PEM);
		}
		gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, x);
		gnutls_priority_set_direct(s, c->prio ? c->prio : "NORMAL", NULL);
		gnutls_session_set_verify_cert(s, "localhost", 0);
	}
	gnutls_transport_set_int(s, c->fd);
	do
		ret = gnutls_handshake(s);
	while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret < 0)
		goto out;
	if (c->stall_ms)
		usleep((useconds_t)c->stall_ms * 1000);
	if (c->echo) {
		size_t got = 0;

		out = malloc(ECHO_BYTES);
		in = malloc(ECHO_BYTES);
		for (size_t i = 0; i < ECHO_BYTES; i++)
			out[i] = (uint8_t)(i * 7 + (i >> 13));
		/* Writes of odd sizes, so records and reads don't line up. */
		for (size_t off = 0, step = 1; off < ECHO_BYTES; step = step * 3 + 1) {
			size_t n = step % 40000 + 1;

			if (n > ECHO_BYTES - off)
				n = ECHO_BYTES - off;
			ret = (int)gnutls_record_send(s, out + off, n);
			if (ret < 0)
				goto out;
			off += (size_t)ret;
		}
		while (got < ECHO_BYTES) {
			ssize_t n = gnutls_record_recv(s, in + got, ECHO_BYTES - got);

			if (n <= 0) {
				ret = n ? (int)n : GNUTLS_E_PREMATURE_TERMINATION;
				goto out;
			}
			got += (size_t)n;
		}
		ret = memcmp(in, out, ECHO_BYTES) ? GNUTLS_E_DECRYPTION_FAILED : 0;
		gnutls_bye(s, GNUTLS_SHUT_WR);
	}
out:
	c->result = ret;
	shutdown(c->fd, SHUT_RDWR);
	free(out);
	free(in);
	gnutls_deinit(s);
	if (x)
		gnutls_certificate_free_credentials(x);
	if (p)
		gnutls_psk_free_client_credentials(p);
	return NULL;
}

/* The server side: handshake, read ECHO_BYTES in pieces, write them back
 * as a three-part iovec. */
struct server {
	struct aiol_loop *loop;
	struct nbd_tls_io *io;
	uint8_t *buf;
	size_t off;
	int hs_res, rd_res, wr_res;
	bool echo, finished, closed;
	bool some;		/* recv-style reads of up to 5000 bytes */
	bool deadline;		/* one read with a 300 ms deadline */
	int64_t t0, elapsed_ms;
	struct iovec iov[3];
};

static void srv_closed(void *arg, int res)
{
	struct server *s = arg;

	(void)res;
	s->closed = true;
}

static void srv_finish(struct server *s)
{
	s->finished = true;
	nbd_tls_io_close(s->io, srv_closed, s);
}

static void srv_written(void *arg, int res)
{
	struct server *s = arg;

	s->wr_res = res == (int)ECHO_BYTES ? 0 : res < 0 ? res : -EIO;
	srv_finish(s);
}

static void srv_read(void *arg, int res)
{
	struct server *s = arg;

	s->rd_res = res < 0 ? res : 0;
	if (s->deadline) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		s->elapsed_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - s->t0;
		srv_finish(s);
		return;
	}
	if (res < 0 || (s->some && res == 0)) {
		s->rd_res = res ? res : -ECONNRESET;
		srv_finish(s);
		return;
	}
	s->off += s->some ? (size_t)res : 1000;
	if (s->off < ECHO_BYTES) {
		size_t n = ECHO_BYTES - s->off < 1000 ? ECHO_BYTES - s->off : 1000;

		if (s->some)
			nbd_tls_io_recv(s->io, s->buf + s->off,
					ECHO_BYTES - s->off < 5000 ? ECHO_BYTES - s->off : 5000,
					srv_read, s);
		else
			nbd_tls_io_read(s->io, s->buf + s->off, n, srv_read, s);
		return;
	}
	s->iov[0] = (struct iovec){ s->buf, 16 };
	s->iov[1] = (struct iovec){ s->buf + 16, 100000 };
	s->iov[2] = (struct iovec){ s->buf + 100016, ECHO_BYTES - 100016 };
	nbd_tls_io_writev(s->io, s->iov, 3, srv_written, s);
}

static void srv_handshaken(void *arg, int res)
{
	struct server *s = arg;

	s->hs_res = res;
	if (res == 0 && s->deadline) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		nbd_tls_io_set_read_deadline(s->io, (int64_t)ts.tv_sec * 1000 +
							    ts.tv_nsec / 1000000 + 300);
		s->echo = true;
		s->t0 = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	if (res < 0 || !s->echo) {
		srv_finish(s);
		return;
	}
	s->off = 0;
	if (s->some)
		nbd_tls_io_recv(s->io, s->buf, 5000, srv_read, s);
	else
		nbd_tls_io_read(s->io, s->buf, 1000, srv_read, s);
}

/* Run one session; returns the server's handshake result and fills the
 * client's. */
static int run_session(const struct nbd_tls_opts *o, struct client *c, struct server *s,
		       bool some)
{
	struct nbd_tls_creds *creds;
	struct nbd_tls *t;
	pthread_t th;
	int sv[2];

	memset(s, 0, sizeof(*s));
	assert_int_equal(nbd_tls_creds_load(o, &creds), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(aiol_loop_create(NULL, &s->loop), 0);
	assert_int_equal(nbd_tls_new(creds, &t), 0);
	assert_int_equal(nbd_tls_io_new(s->loop, sv[0], sv[0], t, &s->io), 0);
	s->buf = malloc(ECHO_BYTES);
	s->echo = c->echo;
	s->some = some;
	s->hs_res = 1;
	c->fd = sv[1];
	assert_int_equal(pthread_create(&th, NULL, client_thread, c), 0);
	nbd_tls_io_handshake(s->io, srv_handshaken, s);
	while (!s->closed)
		assert_true(aiol_loop_run_once(s->loop, true) >= 0);
	shutdown(sv[0], SHUT_RDWR);
	pthread_join(th, NULL);
	if (getenv("TLS_DEBUG"))
		fprintf(stderr, "server hs %d rd %d wr %d client %d\n", s->hs_res, s->rd_res,
			s->wr_res, c->result);
	assert_false(nbd_tls_io_busy(s->io));
	nbd_tls_io_free(s->io);
	aiol_loop_destroy(s->loop);
	close(sv[0]);
	close(sv[1]);
	free(s->buf);
	nbd_tls_creds_free(creds);
	return s->hs_res;
}

static void test_x509_echo(void **state)
{
	struct nbd_tls_opts o = { .mode = NBD_TLS_REQUIRE, .cert_dir = certdir };
	struct client c = { .echo = true };
	struct server s;

	(void)state;
	assert_int_equal(run_session(&o, &c, &s, false), 0);
	assert_int_equal(s.rd_res, 0);
	assert_int_equal(s.wr_res, 0);
	assert_int_equal(c.result, 0);
}

static void test_x509_echo_recv(void **state)
{
	struct nbd_tls_opts o = { .mode = NBD_TLS_REQUIRE, .cert_dir = certdir };
	struct client c = { .echo = true };
	struct server s;

	(void)state;
	assert_int_equal(run_session(&o, &c, &s, true), 0);
	assert_int_equal(s.rd_res, 0);
	assert_int_equal(s.wr_res, 0);
	assert_int_equal(c.result, 0);
}

/* The blocking API a negotiation thread uses. */
static void test_sync_echo(void **state)
{
	struct nbd_tls_opts o = { .mode = NBD_TLS_REQUIRE, .cert_dir = certdir };
	struct client c = { .echo = true };
	struct nbd_tls_creds *creds;
	struct nbd_tls *t;
	struct nbd_tls_sync sy;
	pthread_t th;
	uint8_t *buf = malloc(ECHO_BYTES);
	size_t got = 0;
	int sv[2];

	(void)state;
	assert_int_equal(nbd_tls_creds_load(&o, &creds), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(nbd_tls_new(creds, &t), 0);
	sy = (struct nbd_tls_sync){ .rfd = sv[0], .wfd = sv[0], .stop_fd = -1,
				    .timeout_ms = 10000 };
	c.fd = sv[1];
	assert_int_equal(pthread_create(&th, NULL, client_thread, &c), 0);
	assert_int_equal(nbd_tls_handshake_sync(t, &sy), 0);
	while (got < ECHO_BYTES) {
		ssize_t n = nbd_tls_recv_sync(t, &sy, buf + got, ECHO_BYTES - got);

		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_int_equal(nbd_tls_send_sync(t, &sy, buf, 7), 7);
	assert_int_equal(nbd_tls_send_sync(t, &sy, buf + 7, ECHO_BYTES - 7), ECHO_BYTES - 7);
	pthread_join(th, NULL);
	assert_int_equal(c.result, 0);
	nbd_tls_free(t);
	nbd_tls_creds_free(creds);
	close(sv[0]);
	close(sv[1]);
	free(buf);
}

/* A client that connects and says nothing: the wait is bounded. */
static void test_sync_timeout(void **state)
{
	struct nbd_tls_opts o = { .mode = NBD_TLS_REQUIRE, .cert_dir = certdir };
	struct nbd_tls_creds *creds;
	struct nbd_tls *t;
	struct nbd_tls_sync sy;
	int sv[2];

	(void)state;
	assert_int_equal(nbd_tls_creds_load(&o, &creds), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(nbd_tls_new(creds, &t), 0);
	sy = (struct nbd_tls_sync){ .rfd = sv[0], .wfd = sv[0], .stop_fd = -1,
				    .timeout_ms = 200 };
	assert_int_equal(nbd_tls_handshake_sync(t, &sy), -ETIMEDOUT);
	nbd_tls_free(t);
	nbd_tls_creds_free(creds);
	close(sv[0]);
	close(sv[1]);
}

/* A read deadline: a client that goes quiet after the handshake. */
static void test_read_deadline(void **state)
{
	struct nbd_tls_opts o = { .mode = NBD_TLS_REQUIRE, .cert_dir = certdir };
	struct client c = { .stall_ms = 1500 };
	struct nbd_tls_creds *creds;
	struct nbd_tls *t;
	struct server s = { .deadline = true, .hs_res = 1 };
	pthread_t th;
	int sv[2];

	(void)state;
	assert_int_equal(nbd_tls_creds_load(&o, &creds), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(aiol_loop_create(NULL, &s.loop), 0);
	assert_int_equal(nbd_tls_new(creds, &t), 0);
	assert_int_equal(nbd_tls_io_new(s.loop, sv[0], sv[0], t, &s.io), 0);
	s.buf = malloc(ECHO_BYTES);
	c.fd = sv[1];
	assert_int_equal(pthread_create(&th, NULL, client_thread, &c), 0);
	nbd_tls_io_handshake(s.io, srv_handshaken, &s);
	while (!s.closed)
		assert_true(aiol_loop_run_once(s.loop, true) >= 0);
	assert_int_equal(s.hs_res, 0);
	assert_int_equal(s.rd_res, -ECANCELED);
	assert_true(s.elapsed_ms >= 250 && s.elapsed_ms < 1400);
	shutdown(sv[0], SHUT_RDWR);
	pthread_join(th, NULL);
	nbd_tls_io_free(s.io);
	aiol_loop_destroy(s.loop);
	close(sv[0]);
	close(sv[1]);
	free(s.buf);
	nbd_tls_creds_free(creds);
}

static void test_psk_echo(void **state)
{
	char psk[300], key[128] = "";
	struct nbd_tls_opts o = { .mode = NBD_TLS_ON, .psk_file = psk };
	struct client c = { .echo = true, .psk_user = "alice", .psk_key = key };
	struct server s;
	FILE *f;

	(void)state;
	snprintf(psk, sizeof(psk), "%s/keys.psk", certdir);
	f = fopen(psk, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "alice:%127s", key), 1);
	fclose(f);
	assert_int_equal(run_session(&o, &c, &s, false), 0);
	assert_int_equal(s.rd_res, 0);
	assert_int_equal(c.result, 0);
}

static void test_psk_wrong_key(void **state)
{
	char psk[300];
	struct nbd_tls_opts o = { .mode = NBD_TLS_ON, .psk_file = psk };
	struct client c = { .psk_user = "alice", .psk_key = "00112233445566778899aabbccddeeff" };
	struct server s;

	(void)state;
	snprintf(psk, sizeof(psk), "%s/keys.psk", certdir);
	assert_true(run_session(&o, &c, &s, false) < 0);
	assert_int_not_equal(c.result, 0);
}

static void test_verify_peer_good(void **state)
{
	struct nbd_tls_opts o = { .mode = NBD_TLS_REQUIRE, .cert_dir = certdir,
				  .verify_peer = true };
	struct client c = { .echo = true, .cert_dir = certdir };
	struct server s;

	(void)state;
	assert_int_equal(run_session(&o, &c, &s, false), 0);
	assert_int_equal(c.result, 0);
}

static void test_verify_peer_foreign_ca(void **state)
{
	char other[300];
	struct nbd_tls_opts o = { .mode = NBD_TLS_REQUIRE, .cert_dir = certdir,
				  .verify_peer = true };
	struct client c = { .cert_dir = other };
	struct server s;

	(void)state;
	snprintf(other, sizeof(other), "%s/other", certdir);
	assert_int_equal(run_session(&o, &c, &s, false), -EACCES);
}

static void test_verify_peer_no_cert(void **state)
{
	struct nbd_tls_opts o = { .mode = NBD_TLS_REQUIRE, .cert_dir = certdir,
				  .verify_peer = true };
	struct client c = { 0 };
	struct server s;

	(void)state;
	assert_true(run_session(&o, &c, &s, false) < 0);
}

static void test_old_tls_refused(void **state)
{
	struct nbd_tls_opts o = { .mode = NBD_TLS_REQUIRE, .cert_dir = certdir };
	struct client c = { .prio = "NORMAL:-VERS-ALL:+VERS-TLS1.1:+VERS-TLS1.0" };
	struct server s;

	(void)state;
	assert_true(run_session(&o, &c, &s, false) < 0);
	assert_int_not_equal(c.result, 0);
}

static void test_bad_creds(void **state)
{
	struct nbd_tls_creds *c = (void *)1;
	char path[300];
	struct nbd_tls_opts o = { .mode = NBD_TLS_ON, .cert_dir = "/nonexistent" };
	FILE *f;

	(void)state;
	assert_int_equal(nbd_tls_creds_load(&o, &c), -ENOENT);
	assert_null(c);
	o.cert_dir = NULL;
	assert_int_equal(nbd_tls_creds_load(&o, &c), -EINVAL);	/* neither */
	o.cert_dir = certdir;
	o.psk_file = "x";
	assert_int_equal(nbd_tls_creds_load(&o, &c), -EINVAL);	/* both */
	o.cert_dir = NULL;
	snprintf(path, sizeof(path), "%s/bad.psk", certdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("alice:xyz\n", f);
	fclose(f);
	o.psk_file = path;
	assert_int_equal(nbd_tls_creds_load(&o, &c), -EINVAL);
	o.mode = NBD_TLS_OFF;
	assert_int_equal(nbd_tls_creds_load(&o, &c), 0);
	assert_null(c);
}

static void test_mode_parse(void **state)
{
	enum nbd_tls_mode m;

	(void)state;
	assert_int_equal(nbd_tls_mode_parse("off", &m), 0);
	assert_int_equal(m, NBD_TLS_OFF);
	assert_int_equal(nbd_tls_mode_parse("on", &m), 0);
	assert_int_equal(m, NBD_TLS_ON);
	assert_int_equal(nbd_tls_mode_parse("require", &m), 0);
	assert_int_equal(m, NBD_TLS_REQUIRE);
	assert_int_equal(nbd_tls_mode_parse("maybe", &m), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mode_parse),
		cmocka_unit_test(test_bad_creds),
		cmocka_unit_test(test_x509_echo),
		cmocka_unit_test(test_x509_echo_recv),
		cmocka_unit_test(test_sync_echo),
		cmocka_unit_test(test_sync_timeout),
		cmocka_unit_test(test_read_deadline),
		cmocka_unit_test(test_psk_echo),
		cmocka_unit_test(test_psk_wrong_key),
		cmocka_unit_test(test_verify_peer_good),
		cmocka_unit_test(test_verify_peer_foreign_ca),
		cmocka_unit_test(test_verify_peer_no_cert),
		cmocka_unit_test(test_old_tls_refused),
	};
	char cmd[600];
	int ret;

	snprintf(certdir, sizeof(certdir), "/tmp/aioloop-test-tls.%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "sh '%s' '%s' >/dev/null", MKCERTS, certdir);
	ret = system(cmd);
	if (ret != 0)
		return test_skip_all("cannot make certificates with certtool (" MKCERTS ")");
	signal(SIGPIPE, SIG_IGN);
	aiol_log_setup("test-tls", getenv("TLS_DEBUG") ? AIOL_LOG_DEBUG : AIOL_LOG_ERR, NULL);
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", certdir);
	return ret;
}
