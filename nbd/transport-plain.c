// SPDX-License-Identifier: MIT
/*
 * The plain transport of the transmission phase (transport.h): RECV and
 * SENDMSG on a socket, READ and WRITEV on pipes, one SQE per operation on
 * the worker's ring, a linked timeout for a receive with a deadline, and
 * ASYNC_CANCEL to cancel one.  Completions are the CQEs' results, passed on
 * unchanged.
 *
 * Thread model: the worker's loop thread, but for creation.
 */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport.h"

struct plain {
	struct nbd_transport t;
	struct aiol_loop *loop;
	int rfd, wfd;
	bool rsock, wsock; /* RECV/SENDMSG, else READ/WRITEV (pipes) */
	struct aiol_event rx_ev, tx_ev;
	struct __kernel_timespec rx_ts; /* the receive's linked timeout */
	struct msghdr msg;
};

#define PLAIN(p) aiol_container_of(p, struct plain, t)

bool nbd_fd_is_socket(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

void nbd_post_recv(struct aiol_loop *loop, struct aiol_event *ev, int fd, bool sock, void *buf,
		   size_t len, int64_t deadline_ms, struct __kernel_timespec *ts)
{
	struct io_uring_sqe *sqe;
	int64_t left;

	/* The receive and its linked timeout go in one batch. */
	if (deadline_ms && io_uring_sq_space_left(aiol_loop_ring(loop)) < 2)
		io_uring_submit(aiol_loop_ring(loop));
	sqe = aiol_loop_sqe(loop, ev);
	if (sock)
		io_uring_prep_recv(sqe, fd, buf, len, 0);
	else
		io_uring_prep_read(sqe, fd, buf, (unsigned int)len, (uint64_t)-1);
	if (!deadline_ms)
		return;
	left = deadline_ms - nbd_now_ms();
	if (left < 1)
		left = 1;
	ts->tv_sec = left / 1000;
	ts->tv_nsec = (left % 1000) * 1000000;
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_prep_link_timeout(aiol_loop_sqe(loop, NULL), ts, 0);
}

static void plain_rx_done(struct aiol_event *ev, int res, unsigned int flags)
{
	struct plain *p = aiol_container_of(ev, struct plain, rx_ev);

	(void)flags;
	p->t.recv_done(p->t.arg, res);
}

static void plain_tx_done(struct aiol_event *ev, int res, unsigned int flags)
{
	struct plain *p = aiol_container_of(ev, struct plain, tx_ev);

	(void)flags;
	p->t.send_done(p->t.arg, res);
}

static void plain_recv(struct nbd_transport *t, void *buf, size_t len, int64_t deadline_ms)
{
	struct plain *p = PLAIN(t);

	nbd_post_recv(p->loop, &p->rx_ev, p->rfd, p->rsock, buf, len, deadline_ms, &p->rx_ts);
}

static void plain_writev(struct nbd_transport *t, const struct iovec *iov, int iovcnt)
{
	struct plain *p = PLAIN(t);
	struct io_uring_sqe *sqe = aiol_loop_sqe(p->loop, &p->tx_ev);

	if (p->wsock) {
		memset(&p->msg, 0, sizeof(p->msg));
		p->msg.msg_iov = (struct iovec *)iov;
		p->msg.msg_iovlen = (size_t)iovcnt;
		io_uring_prep_sendmsg(sqe, p->wfd, &p->msg, MSG_NOSIGNAL);
	} else {
		io_uring_prep_writev(sqe, p->wfd, iov, (unsigned int)iovcnt, (uint64_t)-1);
	}
}

static void plain_cancel_recv(struct nbd_transport *t)
{
	struct plain *p = PLAIN(t);

	io_uring_prep_cancel(aiol_loop_sqe(p->loop, NULL), &p->rx_ev, 0);
}

static void plain_abort(struct nbd_transport *t)
{
	struct plain *p = PLAIN(t);

	if (p->rsock)
		shutdown(p->rfd, SHUT_RDWR);
	if (p->wsock && p->wfd != p->rfd)
		shutdown(p->wfd, SHUT_RDWR);
}

/* Nothing to say goodbye with, and the owner closes only once its own
 * operations are done: closed at once. */
static void plain_close(struct nbd_transport *t)
{
	t->closed(t->arg);
}

static void plain_free(struct nbd_transport *t)
{
	struct plain *p = PLAIN(t);

	close(p->rfd);
	if (p->wfd != p->rfd)
		close(p->wfd);
	free(p);
}

static const struct nbd_transport_ops plain_ops = {
    .recv = plain_recv,
    .writev = plain_writev,
    .cancel_recv = plain_cancel_recv,
    .abort = plain_abort,
    .close = plain_close,
    .free = plain_free,
};

int nbd_transport_plain_new(struct aiol_loop *loop, int rfd, int wfd, struct nbd_transport **out)
{
	struct plain *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->t.ops = &plain_ops;
	p->loop = loop;
	p->rfd = rfd;
	p->wfd = wfd;
	p->rsock = nbd_fd_is_socket(rfd);
	p->wsock = nbd_fd_is_socket(wfd);
	p->rx_ev.fn = plain_rx_done;
	p->tx_ev.fn = plain_tx_done;
	*out = &p->t;
	return 0;
}
