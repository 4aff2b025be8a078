// SPDX-License-Identifier: MIT
/*
 * The server's exports (internal.h): the table built from the caller's
 * options at create, the transmission flags each advertises (from the
 * engine's capabilities), and the lookup by name that negotiation does.
 * The table is read-only once the server runs, so any thread may read it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aioloop/log.h"
#include "internal.h"

int nbd_export_find(const struct nbd_server *srv, const char *name, size_t len)
{
	if (len == 0)
		return srv->nexports ? 0 : -1;
	for (unsigned int i = 0; i < srv->nexports; i++) {
		const char *n = srv->exports[i].name;

		if (strlen(n) == len && !memcmp(n, name, len))
			return (int)i;
	}
	return -1;
}

uint16_t nbd_export_tflags(const struct nbd_export *e, bool structured)
{
	uint16_t f = e->tflags;

	if (structured)
		f |= NBD_FLAG_SEND_DF;
	return f;
}

static uint16_t export_flags(const struct aiol_dev_info *info)
{
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_CAN_MULTI_CONN | NBD_FLAG_SEND_CACHE;

	if (info->caps & AIOL_CAP_FLUSH)
		f |= NBD_FLAG_SEND_FLUSH;
	if (info->caps & AIOL_CAP_FUA)
		f |= NBD_FLAG_SEND_FUA;
	if (info->caps & AIOL_CAP_ROTATIONAL)
		f |= NBD_FLAG_ROTATIONAL;
	if (info->read_only) {
		f |= NBD_FLAG_READ_ONLY;
		return f;
	}
	if (info->caps & AIOL_CAP_DISCARD)
		f |= NBD_FLAG_SEND_TRIM;
	if (info->caps & AIOL_CAP_WRITE_ZEROES) {
		f |= NBD_FLAG_SEND_WRITE_ZEROES;
		if (info->caps & AIOL_CAP_FAST_ZERO)
			f |= NBD_FLAG_SEND_FAST_ZERO;
	}
	return f;
}

void nbd_exports_free(struct nbd_server *srv)
{
	for (unsigned int i = 0; i < srv->nexports; i++) {
		free(srv->exports[i].name);
		free(srv->exports[i].description);
	}
	free(srv->exports);
}

int nbd_exports_setup(struct nbd_server *srv, const struct nbd_export_opts *ex, unsigned int n)
{
	srv->exports = calloc(n, sizeof(*srv->exports));
	if (!srv->exports)
		return -ENOMEM;
	srv->nexports = n;
	for (unsigned int i = 0; i < n; i++) {
		struct nbd_export *e = &srv->exports[i];
		const char *name = ex[i].name ? ex[i].name : "";

		if (!ex[i].dev || strlen(name) > NBD_MAX_STRING ||
		    (ex[i].description && strlen(ex[i].description) > NBD_MAX_STRING)) {
			aiol_err("nbd: export %u: missing device or name/description over %u bytes",
				 i, NBD_MAX_STRING);
			return -EINVAL;
		}
		for (unsigned int j = 0; j < i; j++) {
			if (!strcmp(srv->exports[j].name, name)) {
				aiol_err("nbd: export name '%s' given twice", name);
				return -EINVAL;
			}
		}
		e->name = strdup(name);
		e->description = ex[i].description ? strdup(ex[i].description) : NULL;
		if (!e->name || (ex[i].description && !e->description))
			return -ENOMEM;
		e->dev = ex[i].dev;
		e->info = aiol_dev_info(e->dev);
		e->tflags = export_flags(e->info);
		e->pref_block = e->info->dio_align > 4096 ? e->info->dio_align : 4096;
	}
	return 0;
}
