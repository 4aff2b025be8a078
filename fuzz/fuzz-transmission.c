// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the NBD transmission phase (built a second time
 * with FUZZ_TLS as fuzz-tls: the same after STARTTLS and a PSK handshake,
 * so the stream goes through nbd/tls-ring.c's TLS transport).  The first
 * input byte picks a valid negotiation, which the harness sends itself:
 *   bit 0  NBD_OPT_STRUCTURED_REPLY
 *   bit 1  NBD_OPT_EXTENDED_HEADERS (32-byte requests; implies bit 0)
 *   bit 2  NBD_OPT_SET_META_CONTEXT base:allocation
 *   bit 3  the read-only export "ro" instead of the default one
 *   bit 4  NBD_OPT_EXPORT_NAME instead of NBD_OPT_GO (not with bit 1)
 * the rest of the input is the request stream (headers and payloads) as the
 * server reads it, played over a socketpair to the real server.
 */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz-common.h"

#define OPTS_MAGIC 0x49484156454f5054ull

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
	return 4;
}

static size_t put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
	return 8;
}

static size_t option(uint8_t *p, uint32_t opt, const void *d, uint32_t len)
{
	size_t n = put64(p, OPTS_MAGIC);

	n += put32(p + n, opt);
	n += put32(p + n, len);
	if (len)
		memcpy(p + n, d, len);
	return n + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t pre[256], d[64];
	const char *name;
	uint8_t mode;
	size_t n = 0, dn;

	if (size < 1)
		return 0;
	mode = data[0];
	name = mode & 8 ? "ro" : "";
#ifndef FUZZ_TLS
	n += put32(pre, 3);	/* C_FIXED_NEWSTYLE | C_NO_ZEROES */
#endif
	if (mode & 1)
		n += option(pre + n, 8, NULL, 0);
	if (mode & 2)
		n += option(pre + n, 11, NULL, 0);
	if (mode & 4) {
		dn = put32(d, (uint32_t)strlen(name));
		memcpy(d + dn, name, strlen(name));
		dn += strlen(name);
		dn += put32(d + dn, 1);
		dn += put32(d + dn, 15);
		memcpy(d + dn, "base:allocation", 15);
		dn += 15;
		n += option(pre + n, 10, d, (uint32_t)dn);
	}
	if ((mode & 16) && !(mode & 2)) {
		n += option(pre + n, 1, name, (uint32_t)strlen(name));
	} else {
		dn = put32(d, (uint32_t)strlen(name));
		memcpy(d + dn, name, strlen(name));
		dn += strlen(name);
		d[dn++] = 0;	/* no info requests */
		d[dn++] = 0;
		n += option(pre + n, 7, d, (uint32_t)dn);
	}
#ifdef FUZZ_TLS
	fuzz_session_tls(pre, n, data + 1, size - 1);
#else
	fuzz_session(pre, n, data + 1, size - 1);
#endif
	return 0;
}
