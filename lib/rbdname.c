// SPDX-License-Identifier: MIT
/*
 * The parser of RBD image names (rbdname.h): qemu's
 * rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:KEY=VALUE]... syntax, backslash
 * escapes included.  It copies the name once, unescaping in place, and
 * points every field into that copy.  Pure: built with or without librbd,
 * so that the command line can tell a bad name from a missing library.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rbdname.h"

#define PREFIX "rbd:"

/*
 * Copy the token at *src into *dst up to the first unescaped character
 * of stops (or the end), unescaping, and terminate it.  Returns the stop
 * character found ('\0' at the end), or -1 for a trailing backslash.
 * Advances *src past the stop and *dst past the terminator.
 */
static int next_tok(const char **src, char **dst, const char *stops)
{
	const char *s = *src;
	char *d = *dst;
	int stop;

	for (;;) {
		if (*s == '\\') {
			if (!s[1])
				return -1;
			*d++ = s[1];
			s += 2;
			continue;
		}
		if (!*s || strchr(stops, *s))
			break;
		*d++ = *s++;
	}
	stop = (unsigned char)*s;
	*d++ = '\0';
	*src = *s ? s + 1 : s;
	*dst = d;
	return stop;
}

static int fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s", what);
	return -EINVAL;
}

void rbd_name_free(struct rbd_name *n)
{
	free(n->mem);
	memset(n, 0, sizeof(*n));
}

int rbd_name_parse(const char *s, struct rbd_name *n, char *err, size_t errlen)
{
	char *part[3], *d;
	unsigned int nparts = 0;
	int stop, ret;

	memset(n, 0, sizeof(*n));
	if (strncmp(s, PREFIX, strlen(PREFIX)))
		return fail(err, errlen, "an RBD image name starts with 'rbd:'");
	s += strlen(PREFIX);
	n->mem = malloc(strlen(s) + 1);
	if (!n->mem)
		return -ENOMEM;
	d = n->mem;

	/* POOL[/NAMESPACE]/IMAGE */
	do {
		if (nparts == 3) {
			ret = fail(err, errlen,
				   "too many '/': the form is rbd:POOL[/NAMESPACE]/IMAGE");
			goto err;
		}
		part[nparts] = d;
		stop = next_tok(&s, &d, "/@:");
		if (stop < 0)
			goto trailing;
		if (!*part[nparts]) {
			ret = fail(err, errlen, "an empty pool, namespace or image name");
			goto err;
		}
		nparts++;
	} while (stop == '/');
	if (nparts < 2) {
		ret = fail(err, errlen, "no pool: the form is rbd:POOL/IMAGE");
		goto err;
	}
	n->pool = part[0];
	n->ns = nparts == 3 ? part[1] : NULL;
	n->image = part[nparts - 1];

	if (stop == '@') {
		n->snap = d;
		stop = next_tok(&s, &d, ":");
		if (stop < 0)
			goto trailing;
		if (!*n->snap) {
			ret = fail(err, errlen, "an empty snapshot name after '@'");
			goto err;
		}
	}

	/* :KEY=VALUE... */
	while (stop == ':') {
		char *key = d, *val;

		stop = next_tok(&s, &d, "=:");
		if (stop < 0)
			goto trailing;
		if (!*key) {
			ret = fail(err, errlen, "an empty option (':' with nothing after it)");
			goto err;
		}
		if (stop != '=') {
			snprintf(err, errlen, "option '%s' has no value (KEY=VALUE)", key);
			ret = -EINVAL;
			goto err;
		}
		val = d;
		stop = next_tok(&s, &d, ":");
		if (stop < 0)
			goto trailing;
		if (!strcmp(key, "conf") || !strcmp(key, "id")) {
			char **slot = key[0] == 'c' ? &n->conf : &n->id;

			if (*slot || !*val) {
				snprintf(err, errlen, "option '%s' %s", key,
					 *slot ? "is given twice" : "is empty");
				ret = -EINVAL;
				goto err;
			}
			*slot = val;
			continue;
		}
		if (n->nopts == RBD_NAME_MAX_OPTS) {
			snprintf(err, errlen, "more than %d Ceph options", RBD_NAME_MAX_OPTS);
			ret = -EINVAL;
			goto err;
		}
		n->key[n->nopts] = key;
		n->val[n->nopts] = val;
		n->nopts++;
	}
	return 0;

trailing:
	ret = fail(err, errlen, "a '\\' at the end of the name escapes nothing");
err:
	rbd_name_free(n);
	return ret;
}
