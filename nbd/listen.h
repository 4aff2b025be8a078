/* SPDX-License-Identifier: MIT */
/*
 * Listening sockets for the NBD server: TCP (all addresses of a host, port
 * 10809 by default), a Unix socket, or sockets inherited through systemd
 * socket activation; and the accept loop that hands connections to an
 * nbd_server.  Control path, one thread.
 */
#ifndef AIOLOOP_NBD_LISTEN_H
#define AIOLOOP_NBD_LISTEN_H

#include "nbd/server.h"

#define NBD_LISTEN_MAX 16
#define NBD_DEFAULT_PORT "10809"

struct nbd_listen {
	int fds[NBD_LISTEN_MAX];
	unsigned int n;
	char *unix_path; /* unlinked by nbd_listen_close() */
};

/* Bind and listen on host:port (host NULL: localhost).  Returns 0 or -errno
 * (logged). */
int nbd_listen_tcp(struct nbd_listen *l, const char *host, const char *port);
/* Bind and listen on a Unix socket at path (a stale socket there is
 * replaced).  Returns 0 or -errno (logged). */
int nbd_listen_unix(struct nbd_listen *l, const char *path);
/* Take the sockets passed by systemd (LISTEN_PID = our pid, LISTEN_FDS =
 * n, fds from 3).  Returns the number taken (0 when not socket-activated)
 * or -errno.  Unsets the variables. */
int nbd_listen_systemd(struct nbd_listen *l);
/* Accept clients and add them to srv until stop_fd becomes readable.
 * Returns 0 or -errno. */
int nbd_listen_run(struct nbd_listen *l, struct nbd_server *srv, int stop_fd);
void nbd_listen_close(struct nbd_listen *l);

#endif
