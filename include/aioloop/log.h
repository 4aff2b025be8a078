/* SPDX-License-Identifier: MIT */
/*
 * Logging.  One format-checked function; messages go to stderr (or the
 * sink the program installs) prefixed with the program name.  The level and
 * the sink are the only process-wide state of the library: they are set
 * once by the program before any thread starts and only read afterwards.
 * Data-path debug messages use AIOL_DEBUG_DATA and cost one branch when off.
 */
#ifndef AIOLOOP_LOG_H
#define AIOLOOP_LOG_H

#include <stdarg.h>

enum aiol_log_level {
	AIOL_LOG_ERR = 0,
	AIOL_LOG_WARN,
	AIOL_LOG_INFO,
	AIOL_LOG_DEBUG,
	AIOL_LOG_DEBUG_DATA,
};

typedef void (*aiol_log_sink)(int level, const char *msg);

void aiol_log_setup(const char *progname, int level, aiol_log_sink sink);
int aiol_log_level(void);
void aiol_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void aiol_vlog(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define aiol_err(...)  aiol_log(AIOL_LOG_ERR, __VA_ARGS__)
#define aiol_warn(...) aiol_log(AIOL_LOG_WARN, __VA_ARGS__)
#define aiol_info(...) aiol_log(AIOL_LOG_INFO, __VA_ARGS__)
#define aiol_debug(...)                                                \
	do {                                                           \
		if (aiol_log_level() >= AIOL_LOG_DEBUG)                \
			aiol_log(AIOL_LOG_DEBUG, __VA_ARGS__);         \
	} while (0)
#define AIOL_DEBUG_DATA(...)                                           \
	do {                                                           \
		if (__builtin_expect(aiol_log_level() >= AIOL_LOG_DEBUG_DATA, 0)) \
			aiol_log(AIOL_LOG_DEBUG_DATA, __VA_ARGS__);    \
	} while (0)

#endif
