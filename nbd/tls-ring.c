// SPDX-License-Identifier: MIT
/*
 * TLS on a worker's ring (tls.h): struct nbd_tls_io drives a session over
 * one fd pair with RECV/SEND SQEs on the worker's aiol_loop, and wraps it
 * as a struct nbd_transport for the transmission phase (conn.c sees only
 * the transport).
 *
 * The driver runs everything from one deferred work item, pump(), on the
 * loop thread; completion callbacks are delivered one per pump run, so a
 * callback may start the next operation or close.
 *
 * Thread model: the loop thread of the connection only.
 */
#include <errno.h>
#include <limits.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aioloop/loop.h"
#include "tls-session.h"
#include "transport.h"

struct nbd_tls_io {
	struct aiol_loop *loop;
	int rfd, wfd;
	bool rsock, wsock; /* RECV/SEND, else READ/WRITE (pipes) */
	struct nbd_tls *t;
	struct aiol_event recv_ev, send_ev;
	struct aiol_work work;
	bool recv_inflight, send_inflight;
	int err; /* sticky: every operation fails with it */

	bool hs_active;
	nbd_tls_io_cb hs_cb;
	void *hs_arg;

	bool rd_active, rd_some, rd_cancel;
	int64_t rd_deadline_ms; /* CLOCK_MONOTONIC; 0: none */
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
	uint8_t *stage; /* plaintext gathered into one record */
	size_t stage_len, stage_off;

	bool closing, close_done;
	nbd_tls_io_cb close_cb;
	void *close_arg;
};

#define RUNNING INT_MIN /* an operation's result while it runs */
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
			while (io->wr_idx < io->wr_cnt && io->stage_len < NBD_TLS_RECORD_MAX) {
				const struct iovec *v = &io->wr_iov[io->wr_idx];
				size_t take = v->iov_len - io->wr_off;

				if (!v->iov_len) {
					io->wr_idx++;
					continue;
				}

				if (take > NBD_TLS_RECORD_MAX - io->stage_len)
					take = NBD_TLS_RECORD_MAX - io->stage_len;
				memcpy(io->stage + io->stage_len,
				       (const uint8_t *)v->iov_base + io->wr_off, take);
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
			ssize_t n =
			    nbd_tls_read(io->t, io->rd_buf + io->rd_done, io->rd_len - io->rd_done);

			if (n > 0) {
				io->rd_done += (size_t)n;
				continue;
			}
			if (n == -EAGAIN)
				need_input = true;
			else if (n == 0 && io->rd_some)
				rd = 0; /* end of stream: recv() returns 0 */
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

	if (!io)
		return -ENOMEM;
	io->stage = malloc(NBD_TLS_RECORD_MAX);
	if (!io->stage) {
		free(io);
		return -ENOMEM;
	}
	io->loop = loop;
	io->rfd = rfd;
	io->wfd = wfd;
	io->rsock = nbd_fd_is_socket(rfd);
	io->wsock = nbd_fd_is_socket(wfd);
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
	    !nbd_tls_out_pending(io->t, &(const void *){NULL})) {
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

void nbd_tls_io_writev(struct nbd_tls_io *io, const struct iovec *iov, int iovcnt, nbd_tls_io_cb cb,
		       void *arg)
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

/* ---- the TLS transport (transport.h) over the driver ---- */

struct tls_transport {
	struct nbd_transport t;
	struct nbd_tls_io *io;
};

#define TT(p) aiol_container_of(p, struct tls_transport, t)

static void tt_recv_done(void *arg, int res)
{
	struct tls_transport *x = arg;

	x->t.recv_done(x->t.arg, res);
}

static void tt_send_done(void *arg, int res)
{
	struct tls_transport *x = arg;

	x->t.send_done(x->t.arg, res);
}

static void tt_closed(void *arg, int res)
{
	struct tls_transport *x = arg;

	(void)res;
	x->t.closed(x->t.arg);
}

static void tt_recv(struct nbd_transport *t, void *buf, size_t len, int64_t deadline_ms)
{
	struct tls_transport *x = TT(t);

	nbd_tls_io_set_read_deadline(x->io, deadline_ms);
	nbd_tls_io_recv(x->io, buf, len, tt_recv_done, x);
}

static void tt_writev(struct nbd_transport *t, const struct iovec *iov, int iovcnt)
{
	struct tls_transport *x = TT(t);

	nbd_tls_io_writev(x->io, iov, iovcnt, tt_send_done, x);
}

static void tt_cancel_recv(struct nbd_transport *t)
{
	nbd_tls_io_cancel_read(TT(t)->io);
}

static void tt_abort(struct nbd_transport *t)
{
	struct nbd_tls_io *io = TT(t)->io;

	if (io->rsock)
		shutdown(io->rfd, SHUT_RDWR);
	if (io->wsock && io->wfd != io->rfd)
		shutdown(io->wfd, SHUT_RDWR);
}

/* close_notify, then closed() once no SQE of the session is in flight. */
static void tt_close(struct nbd_transport *t)
{
	struct tls_transport *x = TT(t);

	nbd_tls_io_close(x->io, tt_closed, x);
}

static void tt_free(struct nbd_transport *t)
{
	struct tls_transport *x = TT(t);
	int rfd = x->io->rfd, wfd = x->io->wfd;

	nbd_tls_io_free(x->io);
	close(rfd);
	if (wfd != rfd)
		close(wfd);
	free(x);
}

static const struct nbd_transport_ops tls_transport_ops = {
    .recv = tt_recv,
    .writev = tt_writev,
    .cancel_recv = tt_cancel_recv,
    .abort = tt_abort,
    .close = tt_close,
    .free = tt_free,
};

int nbd_transport_tls_new(struct aiol_loop *loop, int rfd, int wfd, struct nbd_tls *t,
			  struct nbd_transport **out)
{
	struct tls_transport *x = calloc(1, sizeof(*x));
	int ret;

	if (!x)
		return -ENOMEM;
	ret = nbd_tls_io_new(loop, rfd, wfd, t, &x->io);
	if (ret < 0) {
		free(x);
		return ret;
	}
	x->t.ops = &tls_transport_ops;
	*out = &x->t;
	return 0;
}
