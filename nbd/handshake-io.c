// SPDX-License-Identifier: MIT
/*
 * Plain byte I/O of a negotiating connection (handshake-io.h): read and
 * send on its fds, each wait bounded by poll on the fd and the server's
 * stop_fd, with the idle timeout cut short by the negotiation's deadline.
 * Runs on the handshake thread.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handshake-io.h"

int nbd_poll_wait(int fd, short events, int stop_fd, int timeout_ms, int64_t deadline_ms)
{
	struct pollfd p[2] = {
	    {.fd = fd, .events = events},
	    {.fd = stop_fd, .events = POLLIN},
	};
	int n;

	for (;;) {
		n = poll(p, stop_fd >= 0 ? 2 : 1, nbd_wait_ms(timeout_ms, deadline_ms));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		if (p[0].revents)
			return 0;
		return -ESHUTDOWN;
	}
}

static int io_wait(struct nbd_io *io, int fd, short events)
{
	return nbd_poll_wait(fd, events, io->stop_fd, io->timeout_ms, io->deadline_ms);
}

static ssize_t plain_recv(struct nbd_io *io, void *buf, size_t len)
{
	ssize_t n;
	int ret;

	for (;;) {
		ret = io_wait(io, io->rfd, POLLIN);
		if (ret < 0)
			return ret;
		n = read(io->rfd, buf, len);
		if (n >= 0)
			return n;
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
}

static ssize_t plain_send(struct nbd_io *io, const void *buf, size_t len)
{
	ssize_t n;
	int ret;

	for (;;) {
		n = send(io->wfd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK)
			n = write(io->wfd, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		ret = io_wait(io, io->wfd, POLLOUT);
		if (ret < 0)
			return ret;
	}
}

const struct nbd_io_ops nbd_io_plain = {
    .recv = plain_recv,
    .send = plain_send,
};
