/* SPDX-License-Identifier: MIT */
/*
 * The NBD server as a component: a set of exports over already opened
 * engine devices, served by N worker threads, each running one event loop
 * (one io_uring) that carries its connections' socket I/O, their disk I/O
 * and their replies.  Callers hand it connected sockets; listening is the
 * caller's business (nbd/listen.h, cli/serve.c, attach/'s kernel-NBD attach
 * over a socketpair).
 *
 * Thread safety: nbd_server_add_client*(), nbd_server_connections() and
 * nbd_server_wait_idle() may be called from any thread at any time between
 * create and destroy; nbd_server_shutdown() from any one thread;
 * create/destroy from the owning thread.
 */
#ifndef AIOLOOP_NBD_SERVER_H
#define AIOLOOP_NBD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aioloop/engine.h"

/* Smallest arena a worker may have: one 64 MiB request plus room for the
 * engine's bounce buffers (it bounces unaligned I/O in 1 MiB steps). */
#define NBD_WORKER_ARENA_MIN ((size_t)72 << 20)

struct nbd_export_opts {
	const char *name;	 /* export name; "" for the default export */
	const char *description; /* optional, sent as NBD_INFO_DESCRIPTION */
	struct aiol_dev *dev;	 /* opened by the caller, who closes it after
				    nbd_server_destroy() */
};

struct nbd_server_opts {
	unsigned int threads;		   /* worker threads; 0: one per CPU, limited so
					      that each gets NBD_WORKER_ARENA_MIN */
	size_t max_inflight;		   /* total in-flight bytes (sum of the workers'
					      arenas); 0: threads * NBD_WORKER_ARENA_MIN */
	unsigned int max_connections;	   /* 0: unlimited */
	unsigned int queue_depth;	   /* engine queue depth per worker and export; 0: 128 */
	unsigned int handshake_timeout_ms;	/* limit on the whole negotiation; 0: 10 s */
	struct nbd_tls_creds *tls;	/* nbd/tls.h; NULL: no TLS (STARTTLS refused) */
	size_t max_conn_inflight;	/* in-flight bytes per connection; 0: 128 MiB
					   (a single request is never refused by it) */
	unsigned int payload_timeout_ms;	/* a WRITE payload must arrive within
						   this; 0: 60 s */
	int poll_us;			/* a worker polls its ring this long before it
					   sleeps; 0: NBD_DEFAULT_POLL_US, < 0: never */
};

#define NBD_DEFAULT_POLL_US 500

struct nbd_server;
struct nbd_tls_creds;

/* Create the server and start its workers (each opens its loop and one
 * engine queue per export).  The first export is the default one: the
 * empty name "" reaches it whatever its own name.  Returns 0 or -errno
 * (-EINVAL with a logged message for inconsistent options). */
int nbd_server_create(const struct nbd_export_opts *exports, unsigned int nexports,
		      const struct nbd_server_opts *opts, struct nbd_server **out);

/* Serve a connected socket.  Takes ownership of fd (closed on every path).
 * Negotiation runs on a short-lived handshake thread; the connection then
 * moves to a worker (round-robin).  Returns 0, -EBUSY over
 * max_connections, -ESHUTDOWN after shutdown began, or -errno. */
int nbd_server_add_client(struct nbd_server *srv, int fd);
/* The same over a pair of descriptors (e.g. stdin/stdout for -s); they may
 * be pipes.  Both are owned and closed by the server. */
int nbd_server_add_client_fds(struct nbd_server *srv, int in_fd, int out_fd);

/* For the kernel NBD client (attach/nbd/nbd-attach.c), which is configured out
 * of band and sends requests at once: serve fd from the transmission
 * phase on, no handshake, simple replies only, on export export_index.
 * Takes ownership of fd.  Returns 0 or -errno as nbd_server_add_client(). */
int nbd_server_add_client_transmission(struct nbd_server *srv, int fd,
				       unsigned int export_index);
/* The transmission flags such a connection works under (what the kernel
 * must be told): 0 or -EINVAL for an unknown export. */
int nbd_server_export_flags(struct nbd_server *srv, unsigned int export_index,
			    uint16_t *tflags);

/* Clients currently negotiating or connected. */
unsigned int nbd_server_connections(struct nbd_server *srv);
/* Block until no client is negotiating or connected (returns at once if
 * none is). */
void nbd_server_wait_idle(struct nbd_server *srv);

/* Graceful shutdown: refuse new clients, answer options with
 * NBD_REP_ERR_SHUTDOWN and new requests with ESHUTDOWN, let in-flight
 * requests complete and their replies go out, close the connections, stop
 * the workers and fdatasync every writable export.  Blocks until done.
 * Returns 0 or the first -errno of the syncs.  Idempotent. */
int nbd_server_shutdown(struct nbd_server *srv);

/* Shut down (if not yet) and free.  The caller then closes the devs. */
void nbd_server_destroy(struct nbd_server *srv);

#endif
