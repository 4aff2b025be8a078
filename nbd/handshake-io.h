/* SPDX-License-Identifier: MIT */
/*
 * Byte I/O of a connection during negotiation, on its handshake thread:
 * blocking calls bounded by poll (the idle timeout, the negotiation's total
 * deadline, and the server's stop_fd).  struct nbd_io is what handshake.c
 * reads options from and writes replies to; nbd_io_plain is read/write on
 * the fds (handshake-io.c), and after STARTTLS tls-sync.c swaps in its TLS
 * ops, so the option code never asks which it talks through.
 */
#ifndef AIOLOOP_NBD_HANDSHAKE_IO_H
#define AIOLOOP_NBD_HANDSHAKE_IO_H

#include <stdint.h>
#include <sys/types.h>

#include "transport.h"

/* Byte I/O of a connection during negotiation.  The plain implementation
 * uses read/write with poll (bounded by the handshake timeout and woken by
 * the server's stop_fd); a TLS implementation replaces ops and keeps its
 * session in priv. */
struct nbd_io;
struct nbd_io_ops {
	/* Some bytes: > 0 count, 0 end of stream, -errno. */
	ssize_t (*recv)(struct nbd_io *io, void *buf, size_t len);
	ssize_t (*send)(struct nbd_io *io, const void *buf, size_t len);
};

struct nbd_io {
	const struct nbd_io_ops *ops;
	void *priv;
	int rfd, wfd;
	int stop_fd;
	int timeout_ms;
	int64_t deadline_ms; /* CLOCK_MONOTONIC ms ending negotiation; 0: none */
};

extern const struct nbd_io_ops nbd_io_plain;

/* The poll timeout of one negotiation wait: the idle timeout (<= 0: none),
 * cut short by the deadline (0: none; once it has passed the wait gets 0,
 * so it fails unless the fd is ready). */
static inline int nbd_wait_ms(int timeout_ms, int64_t deadline_ms)
{
	int64_t left;

	if (!deadline_ms)
		return timeout_ms > 0 ? timeout_ms : -1;
	left = deadline_ms - nbd_now_ms();
	if (left <= 0)
		return 0;
	return timeout_ms > 0 && timeout_ms < left ? timeout_ms : (int)left;
}

static inline int nbd_io_wait_ms(const struct nbd_io *io)
{
	return nbd_wait_ms(io->timeout_ms, io->deadline_ms);
}

/* Wait on a negotiation thread until fd is ready for events: 0, or
 * -ETIMEDOUT (timeout or deadline), -ESHUTDOWN (stop_fd became readable),
 * -errno.  stop_fd < 0: none.  Retries EINTR. */
int nbd_poll_wait(int fd, short events, int stop_fd, int timeout_ms, int64_t deadline_ms);

#endif
