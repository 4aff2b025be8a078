/* SPDX-License-Identifier: MIT */
/*
 * Names of Ceph RBD images, in qemu's syntax:
 *
 *   rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:KEY=VALUE]...
 *
 * where KEY is `conf` (the ceph.conf to read), `id` (the client's user,
 * without "client."), or any Ceph configuration option, passed on as is
 * (`mon_host=...`, `rados_osd_op_timeout=...`).  A backslash takes the next
 * character literally, so a ':' '@' or '/' can be part of a name or value.
 * A pure parser: no I/O, no logging (errors are written into the caller's
 * buffer), so it can be unit-tested and fuzzed on its own.  Never
 * installed.
 */
#ifndef AIOLOOP_RBDNAME_H
#define AIOLOOP_RBDNAME_H

#include <stddef.h>

#define RBD_NAME_MAX_OPTS 16

struct rbd_name {
	char *pool;
	char *ns; /* NULL: the default namespace */
	char *image;
	char *snap; /* NULL: the image's head (writable) */
	char *conf; /* NULL: Ceph's default search path */
	char *id;   /* NULL: Ceph's default (admin) */
	unsigned int nopts;
	char *key[RBD_NAME_MAX_OPTS]; /* other options, in order */
	char *val[RBD_NAME_MAX_OPTS];
	char *mem; /* every string above points into this */
};

/*
 * Parse s (which starts with "rbd:") into n.  Returns 0, or -EINVAL with
 * a one-line reason in err (errlen bytes), or -ENOMEM.  On success the
 * caller frees n with rbd_name_free(); on failure nothing is left to free.
 */
int rbd_name_parse(const char *s, struct rbd_name *n, char *err, size_t errlen);
void rbd_name_free(struct rbd_name *n);

#endif
