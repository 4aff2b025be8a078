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

#include "aioloop/engine.h"
#include "aioloop/log.h"
#include "fuzz-common.h"
#include "nbd/server.h"

static struct nbd_server *srv;
static struct aiol_dev *devs[2];

static void quiet(int level, const char *msg)
{
	(void)level;
	(void)msg;
}

static void cleanup(void)
{
	nbd_server_destroy(srv);
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
		.handshake_timeout_ms = 2000,
		.max_connections = 4,
	};
	static uint8_t pattern[FUZZ_EXPORT_SIZE / 2];
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
	ret = nbd_server_create(ex, 2, &so, &srv);
	if (ret < 0) {
		fprintf(stderr, "fuzz: nbd_server_create: %s\n", strerror(-ret));
		abort();
	}
	atexit(cleanup);
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
