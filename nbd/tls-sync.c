// SPDX-License-Identifier: MIT
/*
 * TLS on a negotiation thread (tls.h): a blocking, poll-bounded driver of
 * a session over the connection's fds, and the glue that, after the
 * STARTTLS ACK, runs the handshake and swaps the negotiation's byte I/O
 * (struct nbd_io) to it, so that handshake.c never asks whether it talks
 * TLS beyond "was STARTTLS done".
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "handshake-io.h"
#include "tls-session.h"

/* ---- blocking driver ---- */

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

/* ---- STARTTLS glue: struct nbd_io over the blocking driver ---- */

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
