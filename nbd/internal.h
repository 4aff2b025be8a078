/* SPDX-License-Identifier: MIT */
/*
 * Private structures of the NBD server, shared by server.c (workers,
 * clients, shutdown), export.c (the export table), handshake.c (option
 * negotiation) and conn.c (the transmission phase on a worker's loop).
 * Never installed.
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
#include "handshake-io.h"
#include "transport.h"

struct nbd_export {
	char *name;
	char *description;
	struct aiol_dev *dev;
	const struct aiol_dev_info *info;
	uint16_t tflags;     /* without SEND_DF, which depends on the client */
	uint32_t pref_block; /* INFO_BLOCK_SIZE preferred */
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
	/* Called (loop thread) after a connection of w has been freed. */
	void (*conn_gone)(struct nbd_worker *w);
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
	bool shut_down;
	int shutdown_ret;

	pthread_mutex_t lock; /* protects the counters below */
	pthread_cond_t cond;
	unsigned int nclients;	  /* negotiating + connected */
	unsigned int nhandshakes; /* negotiating */
	unsigned int ready;	  /* workers started (create only) */
	int start_err;
};

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

/* export.c: build srv->exports from ex[0..n) (0 or -errno, logged; then
 * nbd_exports_free() cleans up what was built), and free them. */
int nbd_exports_setup(struct nbd_server *srv, const struct nbd_export_opts *ex, unsigned int n);
void nbd_exports_free(struct nbd_server *srv);
/* export.c: look up an export by name; "" is the default export.  -1 if
 * none. */
int nbd_export_find(const struct nbd_server *srv, const char *name, size_t len);
/* export.c: transmission flags for export e on a connection that did (or
 * not) negotiate structured replies. */
uint16_t nbd_export_tflags(const struct nbd_export *e, bool structured);

/* conn.c: start serving a negotiated connection over transport t (which
 * must live on w's loop).  Called on the handshake thread; the connection
 * is posted to w's loop.  Takes t on success.  Returns 0 or -ENOMEM. */
int nbd_conn_start(struct nbd_worker *w, struct nbd_transport *t, const struct nbd_session *s);
/* conn.c, loop thread: begin graceful shutdown of every connection of w. */
void nbd_conn_shutdown_all(struct nbd_worker *w);
/* conn.c, loop thread: hard-disconnect every connection of w (the
 * shutdown grace period is over: a client that does not read its replies
 * must not hold the server up). */
void nbd_conn_abort_all(struct nbd_worker *w);
/* conn.c, loop thread: arena space was freed; resume connections of w
 * that were waiting for it. */
void nbd_worker_buf_ready(struct nbd_worker *w);

#endif
