// SPDX-License-Identifier: MIT
/*
 * The library's one logging function (see aioloop/log.h).  %m works because
 * glibc's vfprintf expands it from errno at the call.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "aioloop/log.h"

static const char *log_prog = "aioloop";
static int log_lvl = AIOL_LOG_INFO;
static aiol_log_sink log_sink;

void aiol_log_setup(const char *progname, int level, aiol_log_sink sink)
{
	if (progname)
		log_prog = progname;
	log_lvl = level;
	log_sink = sink;
}

int aiol_log_level(void)
{
	return log_lvl;
}

void aiol_vlog(int level, const char *fmt, va_list ap)
{
	char buf[1024];
	static const char *const tag[] = { "error: ", "warning: ", "", "debug: ", "debug: " };

	if (level > log_lvl)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (log_sink) {
		log_sink(level, buf);
		return;
	}
	fprintf(stderr, "%s: %s%s\n", log_prog, tag[level < 0 ? 0 : level > 4 ? 4 : level], buf);
}

void aiol_log(int level, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	if (level > log_lvl)
		return;
	va_start(ap, fmt);
	errno = saved;
	aiol_vlog(level, fmt, ap);
	va_end(ap);
	errno = saved;
}
