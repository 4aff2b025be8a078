// SPDX-License-Identifier: MIT
/*
 * The harnesses' server (see fuzz-common.h).  The server is the real one:
 * nbd_server_add_client() on one end of a socketpair runs negotiation on
 * its handshake thread and the transmission phase on the worker's ring, so
 * everything a network client can reach is exercised, threads included.
 * Two exports: "fuzz" (the default, writable) and "ro" (read-only), both
 * FUZZ_EXPORT_SIZE bytes, half data and half hole.
 *
 * A connection the server does not close within 10 s of the client closing
 * its side is reported as a crash (abort), so hangs become findings too.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <pthread.h>
#include <sys/time.h>

#include "aioloop/engine.h"
#include "aioloop/log.h"
#include "fuzz-common.h"
#include "nbd/server.h"
#include "nbd/tls.h"

#define PSK_KEY "8b1c4ad9f6e2d7c3b5a4e1f0d9c8b7a6"

static struct nbd_server *srv;
static struct aiol_dev *devs[2];
static struct nbd_tls_creds *creds;

static void quiet(int level, const char *msg)
{
	(void)level;
	(void)msg;
}

static const char *psk_path;

static void remove_psk(void)
{
	if (psk_path)
		unlink(psk_path);
}

static void cleanup(void)
{
	nbd_server_destroy(srv);
	nbd_tls_creds_free(creds);
	aiol_dev_close(devs[0]);
	aiol_dev_close(devs[1]);
}

void fuzz_setup(void)
{
	char path[] = "/tmp/aioloop-fuzz.XXXXXX";
	struct aiol_open_opts o = { .direct = AIOL_DIRECT_OFF };
	struct nbd_export_opts ex[2] = {
		{ .name = "fuzz", .description = "fuzz target" },
		{ .name = "ro" },
	};
	struct nbd_server_opts so = {
		.threads = 1,
		.handshake_timeout_ms = 10000,	/* generous: the machine may be loaded */
		.max_connections = 4,
	};
	static uint8_t pattern[FUZZ_EXPORT_SIZE / 2];
	char psk[] = "/tmp/aioloop-fuzz-psk.XXXXXX";
	struct nbd_tls_opts to = { .mode = NBD_TLS_ON, .psk_file = psk };
	int fd, ret;

	if (srv)
		return;
	signal(SIGPIPE, SIG_IGN);
	aiol_log_setup("fuzz", getenv("FUZZ_VERBOSE") ? AIOL_LOG_DEBUG : AIOL_LOG_ERR,
		       getenv("FUZZ_VERBOSE") ? NULL : quiet);
	fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, FUZZ_EXPORT_SIZE) < 0)
		abort();
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 31 + 7);
	if (pwrite(fd, pattern, sizeof(pattern), 0) != (ssize_t)sizeof(pattern))
		abort();
	close(fd);
	if (aiol_dev_open(path, &o, &devs[0]) < 0)
		abort();
	o.read_only = true;
	if (aiol_dev_open(path, &o, &devs[1]) < 0)
		abort();
	unlink(path);
	ex[0].dev = devs[0];
	ex[1].dev = devs[1];
	fd = mkstemp(psk);
	if (fd < 0 || write(fd, "fuzz:" PSK_KEY "\n", 38) != 38)
		abort();
	close(fd);
	if (nbd_tls_creds_load(&to, &creds) < 0)
		abort();
	so.tls = creds;
	ret = nbd_server_create(ex, 2, &so, &srv);
	if (ret < 0) {
		fprintf(stderr, "fuzz: nbd_server_create: %s\n", strerror(-ret));
		abort();
	}
	atexit(cleanup);
	/* GnuTLS reads the PSK file at each handshake: keep it until exit. */
	{
		static char keep[sizeof(psk)];

		memcpy(keep, psk, sizeof(psk));
		atexit(remove_psk);
		psk_path = keep;
	}
}

void fuzz_session(const uint8_t *pre, size_t npre, const uint8_t *data, size_t n)
{
	static uint8_t sink[256 << 10];
	size_t off = 0, total = npre + n;
	bool wr_open = true;
	int sv[2];

	fuzz_setup();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	/* The server's end blocks as an accepted socket would. */
	if (fcntl(sv[0], F_SETFL, 0) < 0 || nbd_server_add_client(srv, sv[0]) < 0)
		abort();
	for (;;) {
		struct pollfd p = { .fd = sv[1], .events = POLLIN | (wr_open ? POLLOUT : 0) };
		int r = poll(&p, 1, 10000);

		if (r == 0) {
			fprintf(stderr, "fuzz: the server neither answered nor closed in 10 s\n");
			abort();
		}
		if (r < 0)
			continue;
		if (wr_open && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
			while (off < total) {
				const uint8_t *src = off < npre ? pre + off : data + (off - npre);
				size_t len = off < npre ? npre - off : total - off;
				ssize_t w = send(sv[1], src, len, MSG_NOSIGNAL);

				if (w <= 0)
					break;
				off += (size_t)w;
			}
			if (off == total || (errno != EAGAIN && errno != EINTR)) {
				shutdown(sv[1], SHUT_WR);
				wr_open = false;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t rd = recv(sv[1], sink, sizeof(sink), 0);

			if (rd == 0 || (rd < 0 && errno != EAGAIN && errno != EINTR))
				break;
		}
	}
	close(sv[1]);
	nbd_server_wait_idle(srv);
}

/* ---- over TLS ---- */

static int read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t r = recv(fd, p, len, 0);

		if (r < 0 && errno == EINTR)
			continue;	/* libFuzzer's timer; SO_RCVTIMEO disables restarts */
		if (r <= 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

static int send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static void *tls_reader(void *arg)
{
	gnutls_session_t s = arg;
	static uint8_t sink[64 << 10];
	ssize_t r;

	do
		r = gnutls_record_recv(s, sink, sizeof(sink));
	while (r > 0 || r == GNUTLS_E_INTERRUPTED);
	if (r == GNUTLS_E_AGAIN) {	/* SO_RCVTIMEO expired */
		fprintf(stderr, "fuzz: the TLS server neither answered nor closed in 10 s\n");
		abort();
	}
	return NULL;
}

void fuzz_session_tls(const uint8_t *pre, size_t npre, const uint8_t *data, size_t n)
{
	static const uint8_t start[] = {
		0, 0, 0, 3,					/* client flags */
		'I', 'H', 'A', 'V', 'E', 'O', 'P', 'T', 0, 0, 0, 5, 0, 0, 0, 0,	/* STARTTLS */
	};
	gnutls_datum_t key = { (unsigned char *)PSK_KEY, sizeof(PSK_KEY) - 1 };
	struct timeval tv = { .tv_sec = 10 };
	gnutls_psk_client_credentials_t pc;
	gnutls_session_t s;
	uint8_t buf[20];
	pthread_t th;
	int sv[2], ret;

	fuzz_setup();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ret = nbd_server_add_client(srv, sv[0]);
	if (ret < 0) {
		fprintf(stderr, "fuzz: nbd_server_add_client: %s\n", strerror(-ret));
		abort();
	}
	memset(buf, 0, sizeof(buf));
	if (read_all(sv[1], buf, 18) < 0 || send_all(sv[1], start, sizeof(start)) < 0 ||
	    read_all(sv[1], buf, 20) < 0 || buf[15] != 1) {
		fprintf(stderr, "fuzz: STARTTLS was not acknowledged (%m, reply type 0x%02x%02x%02x%02x)\n",
			buf[12], buf[13], buf[14], buf[15]);
		abort();
	}
	gnutls_psk_allocate_client_credentials(&pc);
	gnutls_psk_set_client_credentials(pc, "fuzz", &key, GNUTLS_PSK_KEY_HEX);
	gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL);
	gnutls_priority_set_direct(s, "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK", NULL);
	gnutls_credentials_set(s, GNUTLS_CRD_PSK, pc);
	gnutls_transport_set_int(s, sv[1]);
	do
		ret = gnutls_handshake(s);
	while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret < 0) {
		fprintf(stderr, "fuzz: TLS handshake: %s\n", gnutls_strerror(ret));
		abort();
	}
	if (pthread_create(&th, NULL, tls_reader, s) != 0)
		abort();
	for (size_t off = 0, total = npre + n; off < total;) {
		const uint8_t *src = off < npre ? pre + off : data + (off - npre);
		size_t len = off < npre ? npre - off : total - off;
		ssize_t w = gnutls_record_send(s, src, len > 16384 ? 16384 : len);

		if (w == GNUTLS_E_INTERRUPTED)
			continue;
		if (w == GNUTLS_E_AGAIN) {	/* SO_SNDTIMEO expired */
			fprintf(stderr, "fuzz: the TLS server stopped reading for 10 s\n");
			abort();
		}
		if (w <= 0)
			break;	/* the server hung up */
		off += (size_t)w;
	}
	gnutls_bye(s, GNUTLS_SHUT_WR);
	shutdown(sv[1], SHUT_WR);
	pthread_join(th, NULL);
	gnutls_deinit(s);
	gnutls_psk_free_client_credentials(pc);
	close(sv[1]);
	nbd_server_wait_idle(srv);
}
