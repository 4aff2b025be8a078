/* SPDX-License-Identifier: MIT */
/*
 * The kernel NBD client as an attach frontend: /dev/nbdN connected, over
 * socketpairs, to this process's NBD server started directly in the
 * transmission phase (the kernel client sends no handshake when configured
 * through netlink or ioctls).
 */
#ifndef AIOLOOP_NBD_ATTACH_H
#define AIOLOOP_NBD_ATTACH_H

#include <stddef.h>

#include "aioloop/engine.h"

struct stats_export;

/* --recovery reissue: how long I/O waits for a new daemon, and the request
 * timeout after which what a dead daemon left unanswered is sent again. */
#define NBD_DEAD_CONN_TIMEOUT_S 3600
#define NBD_DEFAULT_TIMEOUT_S 30
#define NBD_MAX_TIMEOUT_S 86400

struct nbd_attach_opts {
	const char *path;
	struct aiol_open_opts open;
	unsigned int nr_conns; /* 0: 1 */
	/* < 0: a new device; N >= 0: reconnect /dev/nbdN, whose daemon died
	 * or handed it over, through NBD_CMD_RECONFIGURE (netlink only). */
	int index;
	/* Netlink only.  timeout_s: a request unanswered this long is sent
	 * again (NBD_ATTR_TIMEOUT; 0: never, the kernel warns).
	 * dead_conn_timeout_s: how long I/O waits for a new daemon once every
	 * connection is gone (NBD_ATTR_DEAD_CONN_TIMEOUT; 0: it fails). */
	unsigned int timeout_s, dead_conn_timeout_s;
	/* Live upgrade, asked with ATTACH_SIG_CONTROL: upgrade_request()
	 * returns 0 if one was asked; upgrade_done() answers (err 0: the daemon
	 * lets go of the device, nbd_attach_run() returns
	 * NBD_ATTACH_HANDED_OVER), or -errno and why (it keeps serving). */
	int (*upgrade_request)(void *arg);
	void (*upgrade_done)(void *arg, int err, const char *why);
	/* Called once on the control thread: index N of /dev/nbdN once it is
	 * connected (err 0), or the error. */
	void (*ready)(void *arg, int index, const struct aiol_dev_info *info, int err);
	void *arg;
	struct stats_export *stats; /* request statistics; NULL: the server's own */
};

/* nbd_attach_run()'s result when the device was left to the next daemon. */
#define NBD_ATTACH_HANDED_OVER 1

/* Serve until SIGTERM/SIGINT/SIGHUP (blocked by the caller), then
 * disconnect.  When the kernel drops every connection (a request timed
 * out) and dead_conn_timeout_s is set, reconnect with new sockets instead.
 * Returns 0, NBD_ATTACH_HANDED_OVER or -errno. */
int nbd_attach_run(const struct nbd_attach_opts *o);
/* Disconnect /dev/nbdN whose daemon died.  Returns 0 or -errno. */
int nbd_attach_disconnect(int index);
/* Why the kernel NBD client cannot be used, or NULL. */
const char *nbd_attach_unavailable(char *buf, size_t len);

#endif
