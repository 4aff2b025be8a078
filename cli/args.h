/* SPDX-License-Identifier: MIT */
/*
 * The command line's numbers, parsed strictly and in one place: a whole
 * number within [min, max] (ports, counts, depths, timeouts), a byte size
 * with an optional binary suffix (offsets, size limits, caps), a duration
 * in seconds.  Pure: no I/O, no globals, so unit tests and fuzzers call
 * these directly.  A rejection returns -EINVAL or -ERANGE and describes
 * itself in a struct cli_err, naming the option, the value and what the
 * option accepts; the caller prints it.
 *
 * Accepted: decimal digits (a leading 0 is not octal), or 0x and hex
 * digits; nothing before (no sign, no blank) and nothing after but, for a
 * size, one of K, M, G, T (binary multiples, either case) optionally
 * followed by "i" and/or "B", or a bare "B".  "-0" is refused like any
 * other sign.
 */
#ifndef AIOLOOP_CLI_ARGS_H
#define AIOLOOP_CLI_ARGS_H

#include <stdint.h>

/* Why a value was refused, as one line without a newline:
 * "--port '99999': out of range (a whole number from 1 to 65535)". */
struct cli_err {
	char msg[256];
};

/* Parse s, the value of option opt (as the user would write it, "--port"),
 * as a whole number from min to max.  Returns 0 with *out set, -EINVAL
 * (not a number) or -ERANGE (beyond min..max or 2^64), with err filled. */
int cli_parse_uint(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out,
		   struct cli_err *err);

/* The same into an unsigned int; max must fit one. */
int cli_parse_uint32(const char *opt, const char *s, unsigned int min, unsigned int max,
		     unsigned int *out, struct cli_err *err);

/* Parse s as a byte count with an optional suffix ("512", "4k", "1GiB"),
 * from min to max bytes.  Returns 0, -EINVAL or -ERANGE, as above; a
 * suffix that carries the value past 2^64 - 1 is -ERANGE. */
int cli_parse_size(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out,
		   struct cli_err *err);

/* Parse s as a positive duration in seconds, decimals allowed ("0.5"),
 * above 0 and at most max.  Returns 0, -EINVAL or -ERANGE, as above. */
int cli_parse_seconds(const char *opt, const char *s, double max, double *out, struct cli_err *err);

/* A logical block size: 512 or 4096 (as a size: "4k" too). */
int cli_parse_block_size(const char *opt, const char *s, unsigned int *out, struct cli_err *err);

/* A TCP port, 1 to 65535, as its canonical decimal string in buf (for
 * getaddrinfo(), which would wrap 99999 to 34463). */
int cli_parse_port(const char *opt, const char *s, char *buf, unsigned int len,
		   struct cli_err *err);

#endif
