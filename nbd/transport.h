/* SPDX-License-Identifier: MIT */
/*
 * The byte transport of a connection in the transmission phase: what
 * conn.c receives requests and sends replies through, on the worker's
 * ring.  Two implementations: plain (transport-plain.c: RECV/SENDMSG, or
 * READ/WRITEV on pipes) and TLS (tls-ring.c: the same through a GnuTLS
 * session).  Which one a connection gets is decided once, when it leaves
 * negotiation (nbdkit swaps its connection's recv/send/close the same way
 * after STARTTLS); the protocol code never asks.
 *
 * Contract, for both: at most one recv and one writev in flight; their
 * completions (recv_done, send_done) run on the loop thread, never inside
 * the call that started them.  The transport owns its fds from creation
 * and closes them in free().  Thread model: the worker's loop thread only.
 */
#ifndef AIOLOOP_NBD_TRANSPORT_H
#define AIOLOOP_NBD_TRANSPORT_H

#include <linux/time_types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "aioloop/loop.h"

/* CLOCK_MONOTONIC in milliseconds: the clock of every deadline in nbd/. */
static inline int64_t nbd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct nbd_transport;

struct nbd_transport_ops {
	/* Receive up to len bytes into buf.  recv_done(arg, res): bytes
	 * (> 0), 0 at end of stream, or -errno: -EINTR/-EAGAIN (nothing
	 * happened: ask again), -ECANCELED (cancelled, or no byte arrived
	 * by deadline_ms, CLOCK_MONOTONIC; 0: no deadline). */
	void (*recv)(struct nbd_transport *t, void *buf, size_t len, int64_t deadline_ms);
	/* Send iov[0..iovcnt) (the caller's until send_done).  send_done(arg,
	 * res): bytes sent (> 0; fewer than all is a short send, the caller
	 * sends the rest), or -errno (-EINTR/-EAGAIN: send again). */
	void (*writev)(struct nbd_transport *t, const struct iovec *iov, int iovcnt);
	/* Make the recv in flight, if any, complete soon. */
	void (*cancel_recv)(struct nbd_transport *t);
	/* Hard disconnect: shut the socket down so that whatever is in
	 * flight ends; replies not yet sent are lost. */
	void (*abort)(struct nbd_transport *t);
	/* Orderly end once nothing more is to be sent (TLS: close_notify):
	 * closed(arg) runs, possibly before close() returns, once no I/O of
	 * the transport is in flight any more. */
	void (*close)(struct nbd_transport *t);
	/* Free the transport and close its fds (after closed()). */
	void (*free)(struct nbd_transport *t);
};

struct nbd_transport {
	const struct nbd_transport_ops *ops;
	/* Set by the owner before the first operation. */
	void (*recv_done)(void *arg, int res);
	void (*send_done)(void *arg, int res);
	void (*closed)(void *arg);
	void *arg;
};

/* The plain transport over rfd/wfd (the same socket, or pipes) on loop.
 * Takes the fds (closed by free()).  Returns 0 or -ENOMEM (fds then not
 * taken).  Any thread (it only allocates); used on loop's thread. */
int nbd_transport_plain_new(struct aiol_loop *loop, int rfd, int wfd, struct nbd_transport **out);

/* Loop thread: queue a RECV (sock) or READ (pipe) of up to len bytes of fd
 * into buf, completing on ev.  With deadline_ms (CLOCK_MONOTONIC; 0: none) a
 * linked timeout, held in *ts until it completes, cancels it then
 * (-ECANCELED).  The ring primitive both transports receive with. */
void nbd_post_recv(struct aiol_loop *loop, struct aiol_event *ev, int fd, bool sock, void *buf,
		   size_t len, int64_t deadline_ms, struct __kernel_timespec *ts);

/* Whether fd is a socket (RECV/SEND, shutdown) rather than a pipe. */
bool nbd_fd_is_socket(int fd);

#endif
