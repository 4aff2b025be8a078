// SPDX-License-Identifier: MIT
/*
 * The kernel NBD client attach frontend (see nbd-attach.h).  Not written
 * yet: reports itself unavailable.
 */
#include <errno.h>
#include <stdio.h>

#include "nbd-attach.h"

int nbd_attach_run(const struct nbd_attach_opts *o)
{
	if (o->ready)
		o->ready(o->arg, -1, NULL, -ENOSYS);
	return -ENOSYS;
}

int nbd_attach_disconnect(int index)
{
	(void)index;
	return -ENOSYS;
}

const char *nbd_attach_unavailable(char *buf, size_t len)
{
	snprintf(buf, len, "not supported by this build yet");
	return buf;
}
