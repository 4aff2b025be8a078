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

struct nbd_attach_opts {
	const char *path;
	struct aiol_open_opts open;
	unsigned int nr_conns; /* 0: 1 */
	/* Called once on the control thread: index N of /dev/nbdN once it is
	 * connected (err 0), or the error. */
	void (*ready)(void *arg, int index, const struct aiol_dev_info *info, int err);
	void *arg;
	struct stats_export *stats; /* request statistics; NULL: the server's own */
};

/* Serve until SIGTERM/SIGINT/SIGHUP (blocked by the caller), then
 * disconnect.  Returns 0 or -errno. */
int nbd_attach_run(const struct nbd_attach_opts *o);
/* Disconnect /dev/nbdN whose daemon died.  Returns 0 or -errno. */
int nbd_attach_disconnect(int index);
/* Why the kernel NBD client cannot be used, or NULL. */
const char *nbd_attach_unavailable(char *buf, size_t len);

#endif
