/* SPDX-License-Identifier: MIT */
/*
 * Private structures of the NBD server, shared by server.c (workers,
 * clients, shutdown), handshake.c (option negotiation) and conn.c (the
 * transmission phase on a worker's loop).  Never installed.
 */
#ifndef AIOLOOP_NBD_INTERNAL_H
#define AIOLOOP_NBD_INTERNAL_H

#include <linux/time_types.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <time.h>

#include "aioloop/engine.h"
#include "aioloop/loop.h"
#include "protocol.h"
#include "request.h"
#include "server.h"
#include "stats/stats.h"

struct nbd_export {
	char *name;
	char *description;
	struct aiol_dev *dev;
	const struct aiol_dev_info *info;
	uint16_t tflags;     /* without SEND_DF, which depends on the client */
	uint32_t pref_block; /* INFO_BLOCK_SIZE preferred */
	struct stats_export *stats; /* the caller's, or stats_own */
	struct stats_export stats_own;
	bool own_stats;
};

struct nbd_conn;

struct nbd_worker {
	struct nbd_server *srv;
	unsigned int index;
	pthread_t thread;
	struct aiol_loop *loop;
	struct aiol_queue **queues; /* one per export */
	struct aiol_work stop_work;
	struct aiol_work buf_waiter; /* arena space freed: resume waiting conns */
	struct aiol_event grace_ev;  /* shutdown grace period over */
	struct __kernel_timespec grace_ts;
	bool stopping;
	struct nbd_conn *conns; /* list, loop thread only */
	unsigned int nconns;
};

struct nbd_server {
	struct nbd_export *exports;
	unsigned int nexports;
	struct nbd_worker *workers;
	unsigned int nworkers;
	size_t arena_bytes; /* per worker */
	unsigned int max_connections;
	unsigned int queue_depth;
	int handshake_timeout_ms;
	struct nbd_tls_creds *tls;	/* NULL: no TLS */
	size_t max_conn_inflight;	/* data buffer bytes one connection may hold */
	int payload_timeout_ms;		/* limit on receiving one WRITE payload */
	unsigned int poll_us;		/* ring polling before a worker sleeps (0: none) */
	int stop_fd; /* eventfd, readable once stopping */
	atomic_bool stopping;
	atomic_uint next_worker;
	atomic_uint conn_ids; /* numbers connections in the statistics */
	bool shut_down;
	int shutdown_ret;

	pthread_mutex_t lock; /* protects the counters below */
	pthread_cond_t cond;
	unsigned int nclients;	  /* negotiating + connected */
	unsigned int nhandshakes; /* negotiating */
	unsigned int ready;	  /* workers started (create only) */
	int start_err;
};

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
	int64_t deadline_ms;	/* CLOCK_MONOTONIC ms ending negotiation; 0: none */
};

extern const struct nbd_io_ops nbd_io_plain;

/* CLOCK_MONOTONIC in milliseconds. */
static inline int64_t nbd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* What negotiation agreed on. */
struct nbd_session {
	unsigned int export_idx;
	bool structured;
	bool extended;
	bool meta; /* base:allocation selected for that export */
	struct nbd_tls *tls;	/* the TLS session after STARTTLS, or NULL */
};

/* Negotiate on io (handshake.c).  Returns 0 when the client entered the
 * transmission phase (*out filled), 1 when it ended negotiation politely
 * (NBD_OPT_ABORT), or -errno for a hard disconnect (protocol violation,
 * unknown export in EXPORT_NAME, timeout, shutdown, I/O error). */
int nbd_handshake(struct nbd_server *srv, struct nbd_io *io, struct nbd_session *out);

/* Look up an export by name; "" is the default export.  -1 if none. */
int nbd_server_find_export(const struct nbd_server *srv, const char *name, size_t len);

/* Transmission flags for export e on a connection that negotiated s. */
uint16_t nbd_export_tflags(const struct nbd_export *e, bool structured);

/* conn.c: start serving a negotiated connection.  Called on the
 * handshake thread; the connection is posted to worker w's loop.  Takes
 * ownership of the fds.  Returns 0 or -errno (fds not closed then). */
int nbd_conn_start(struct nbd_worker *w, int rfd, int wfd, const struct nbd_session *s);
/* conn.c, loop thread: begin graceful shutdown of every connection of w. */
void nbd_conn_shutdown_all(struct nbd_worker *w);
/* conn.c, loop thread: hard-disconnect every connection of w (the
 * shutdown grace period is over: a client that does not read its replies
 * must not hold the server up). */
void nbd_conn_abort_all(struct nbd_worker *w);
/* conn.c, loop thread: queue a RECV (sock) or READ (pipe) of up to len
 * bytes of fd into buf, completing on ev.  With deadline_ms (CLOCK_MONOTONIC;
 * 0: none) a linked timeout, held in *ts until it completes, cancels it
 * then (-ECANCELED). */
void nbd_post_recv(struct aiol_loop *loop, struct aiol_event *ev, int fd, bool sock, void *buf,
		   size_t len, int64_t deadline_ms, struct __kernel_timespec *ts);
/* conn.c, loop thread: arena space was freed; resume connections of w
 * that were waiting for it. */
void nbd_worker_buf_ready(struct nbd_worker *w);
/* server.c: a connection of w has closed (loop thread). */
void nbd_server_client_gone(struct nbd_server *srv);

#endif
