// SPDX-License-Identifier: MIT
/*
 * The RBD store when aioloop is built without librbd (meson -Drbd=disabled,
 * or librbd-dev absent): an rbd: name is still parsed, so that a mistake in
 * it is reported as such, and then refused with a message saying that the
 * feature was compiled out.
 */
#include <errno.h>
#include <string.h>

#include "aioloop/log.h"
#include "aioloop/store.h"
#include "rbdname.h"

int aiol_rbd_store_open(const char *name, const struct aiol_open_opts *opts,
			struct aiol_store **out)
{
	struct rbd_name n;
	char err[256];
	int ret;

	(void)opts;
	*out = NULL;
	ret = rbd_name_parse(name, &n, err, sizeof(err));
	if (ret < 0) {
		aiol_err("%s: %s", name, ret == -ENOMEM ? strerror(ENOMEM) : err);
		return ret;
	}
	rbd_name_free(&n);
	aiol_err("%s: aioloop was compiled without RBD support (built without librbd)", name);
	return -ENOTSUP;
}
