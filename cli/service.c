// SPDX-License-Identifier: MIT
/*
 * Running under systemd: the service manager's notifications (sd_notify:
 * READY once serving, STATUS naming what is served, STOPPING on the way
 * out, for Type=notify units) and log lines the journal files under the
 * right priority (a "<3>" syslog prefix on each line when stderr is the
 * journal's stream, as systemd's JOURNAL_STREAM says).  Outside systemd
 * both cost nothing: sd_notify does nothing without NOTIFY_SOCKET, and the
 * prefixes are added only when stderr is the journal.  Without libsystemd
 * at build time the notifications are no-ops.
 *
 * Control path only; cli_log_setup before any thread starts.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "cli.h"

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

bool cli_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* syslog priorities: LOG_ERR 3, LOG_WARNING 4, LOG_INFO 6, LOG_DEBUG 7. */
static void journal_sink(int level, const char *msg)
{
	static const char *const prefix[] = {"<3>", "<4>", "<6>", "<7>", "<7>"};

	fprintf(stderr, "%saioloop: %s\n", prefix[level < 0 ? 0 : level > 4 ? 4 : level], msg);
}

void cli_log_setup(int level)
{
	aiol_log_setup("aioloop", level, cli_stderr_is_journal() ? journal_sink : NULL);
}

void cli_notify(const char *fmt, ...)
{
#ifdef HAVE_LIBSYSTEMD
	char buf[1024];
	va_list ap;

	if (!getenv("NOTIFY_SOCKET"))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (sd_notify(0, buf) < 0)
		aiol_debug("sd_notify failed");
#else
	(void)fmt;
#endif
}
