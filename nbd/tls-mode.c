// SPDX-License-Identifier: MIT
/*
 * --tls=MODE parsing (tls.h): built with or without GnuTLS.
 */
#include <errno.h>
#include <string.h>

#include "tls.h"

int nbd_tls_mode_parse(const char *s, enum nbd_tls_mode *out)
{
	if (!strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "0"))
		*out = NBD_TLS_OFF;
	else if (!strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "1"))
		*out = NBD_TLS_ON;
	else if (!strcmp(s, "require") || !strcmp(s, "required") || !strcmp(s, "force"))
		*out = NBD_TLS_REQUIRE;
	else
		return -EINVAL;
	return 0;
}
