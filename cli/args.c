// SPDX-License-Identifier: MIT
/*
 * Strict parsers for the numbers on aioloop's command line (see args.h):
 * one syntax for every option of every subcommand, range checks done here
 * rather than after a cast, and a message that names the option and what
 * it accepts.  No I/O and no globals: errno is never read or left set.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

static void set_err(struct cli_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_err(struct cli_err *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

static int digit_value(char c, unsigned int base)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (base == 16 && c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (base == 16 && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The digits at the start of s: decimal, or hex after "0x".  Returns 0 with
 * *out set and *end after the last digit, -EINVAL if there are no digits,
 * -ERANGE if the value does not fit 64 bits. */
static int scan_digits(const char *s, uint64_t *out, const char **end)
{
	unsigned int base = 10;
	uint64_t v = 0;
	bool over = false;
	int d;

	if ((s[0] == '0') && (s[1] == 'x' || s[1] == 'X') && digit_value(s[2], 16) >= 0) {
		base = 16;
		s += 2;
	}
	if (digit_value(*s, base) < 0)
		return -EINVAL;
	for (; (d = digit_value(*s, base)) >= 0; s++) {
		if (v > (UINT64_MAX - (uint64_t)d) / base)
			over = true;
		else
			v = v * base + (uint64_t)d;
	}
	*end = s;
	*out = v;
	return over ? -ERANGE : 0;
}

/* "64M" for an exact multiple of a binary unit, else the plain number. */
static void fmt_size(char *buf, size_t len, uint64_t v)
{
	static const char units[] = "KMGT";

	for (int i = 3; i >= 0; i--) {
		unsigned int shift = 10 * (unsigned int)(i + 1);

		if (v && !(v & ((1ull << shift) - 1))) {
			snprintf(buf, len, "%" PRIu64 "%c", v >> shift, units[i]);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, v);
}

static void uint_err(struct cli_err *err, const char *opt, const char *s, uint64_t min,
		     uint64_t max, const char *why)
{
	set_err(err, "%s '%s': %s (a whole number from %" PRIu64 " to %" PRIu64 ")", opt, s, why,
		min, max);
}

int cli_parse_uint(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out,
		   struct cli_err *err)
{
	const char *end;
	uint64_t v;
	int ret;

	ret = scan_digits(s, &v, &end);
	if (ret == -EINVAL || *end) {
		uint_err(err, opt, s, min, max, "not a number");
		return -EINVAL;
	}
	if (ret == -ERANGE || v < min || v > max) {
		uint_err(err, opt, s, min, max, "out of range");
		return -ERANGE;
	}
	*out = v;
	return 0;
}

int cli_parse_uint32(const char *opt, const char *s, unsigned int min, unsigned int max,
		     unsigned int *out, struct cli_err *err)
{
	uint64_t v;
	int ret = cli_parse_uint(opt, s, min, max, &v, err);

	if (ret == 0)
		*out = (unsigned int)v;
	return ret;
}

static void size_err(struct cli_err *err, const char *opt, const char *s, uint64_t min,
		     uint64_t max, const char *why)
{
	char lo[32], hi[32];

	fmt_size(lo, sizeof(lo), min);
	fmt_size(hi, sizeof(hi), max);
	if (min == 0)
		set_err(err, "%s '%s': %s (bytes with an optional K, M, G or T suffix, at most %s)",
			opt, s, why, hi);
	else
		set_err(err,
			"%s '%s': %s (bytes with an optional K, M, G or T suffix, from %s to %s)",
			opt, s, why, lo, hi);
}

/* The binary shift a suffix stands for, with *end moved past it; -1 if the
 * rest of the string is no suffix. */
static int scan_suffix(const char **end)
{
	const char *p = *end;
	int shift;

	switch (*p) {
	case '\0':
		return 0;
	case 'b':
	case 'B':
		*end = p + 1;
		return **end ? -1 : 0;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	default:
		return -1;
	}
	p++;
	if (*p == 'i' || *p == 'I')
		p++;
	if (*p == 'b' || *p == 'B')
		p++;
	*end = p;
	return *p ? -1 : shift;
}

int cli_parse_size(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out,
		   struct cli_err *err)
{
	const char *end;
	uint64_t v;
	int ret, shift;

	ret = scan_digits(s, &v, &end);
	if (ret == -EINVAL) {
		size_err(err, opt, s, min, max, "not a size");
		return -EINVAL;
	}
	shift = scan_suffix(&end);
	if (shift < 0) {
		size_err(err, opt, s, min, max, "not a size");
		return -EINVAL;
	}
	if (ret == -ERANGE || v > (UINT64_MAX >> shift)) {
		size_err(err, opt, s, min, max, "too large");
		return -ERANGE;
	}
	v <<= shift;
	if (v < min || v > max) {
		size_err(err, opt, s, min, max, "out of range");
		return -ERANGE;
	}
	*out = v;
	return 0;
}

int cli_parse_seconds(const char *opt, const char *s, double max, double *out, struct cli_err *err)
{
	char *end;
	double v;
	int saved = errno;

	/* strtod() syntax, but starting with a digit or a point: no blank,
	 * sign, inf, nan or hex float. */
	if (!((*s >= '0' && *s <= '9') || *s == '.') || strpbrk(s, "xX")) {
		set_err(err, "%s '%s': not a number of seconds (above 0, at most %g)", opt, s, max);
		return -EINVAL;
	}
	v = strtod(s, &end);
	errno = saved;
	if (end == s || *end) {
		set_err(err, "%s '%s': not a number of seconds (above 0, at most %g)", opt, s, max);
		return -EINVAL;
	}
	if (!(v > 0) || v > max) {
		set_err(err, "%s '%s': out of range (seconds, above 0, at most %g)", opt, s, max);
		return -ERANGE;
	}
	*out = v;
	return 0;
}

int cli_parse_block_size(const char *opt, const char *s, unsigned int *out, struct cli_err *err)
{
	uint64_t v = 0;
	int ret = cli_parse_size(opt, s, 512, 4096, &v, err);

	if (ret == 0 && v != 512 && v != 4096)
		ret = -ERANGE;
	if (ret < 0) {
		set_err(err, "%s '%s': not a block size (512 or 4096, also written 4k)", opt, s);
		return ret;
	}
	*out = (unsigned int)v;
	return 0;
}

int cli_parse_port(const char *opt, const char *s, char *buf, unsigned int len, struct cli_err *err)
{
	unsigned int port;
	int ret = cli_parse_uint32(opt, s, 1, 65535, &port, err);

	if (ret == 0)
		snprintf(buf, len, "%u", port);
	return ret;
}
