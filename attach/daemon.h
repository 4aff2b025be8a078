/* SPDX-License-Identifier: MIT */
/*
 * What every attach daemon (ublk or kernel NBD) agrees on.  Signals:
 * SIGTERM, SIGINT and SIGHUP ask it to stop; SIGUSR1 is its internal wake-up
 * (a queue thread ended, the kernel dropped every connection); SIGUSR2
 * (ATTACH_SIG_CONTROL) says a request (resize) waits for the daemon in the
 * state directory.  They are blocked in every thread and taken by the
 * control thread with sigwait().
 * And the device is flushed through the block layer before it is stopped.
 */
#ifndef AIOLOOP_UBLK_DAEMON_H
#define AIOLOOP_UBLK_DAEMON_H

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "aioloop/log.h"

#define ATTACH_SIG_CONTROL SIGUSR2

static inline void attach_daemon_sigset(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
	sigaddset(set, ATTACH_SIG_CONTROL);
}

/* Before the device is stopped, while its daemon still serves it: write
 * back what the page cache holds for device PREFIX N (/dev/ublkb0,
 * /dev/nbd3), which also FLUSHes it.  A device that cannot be opened is
 * left alone. */
static inline void attach_flush_device(const char *prefix, unsigned int n)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "%s%u", prefix, n);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return;
	if (fsync(fd) < 0)
		aiol_warn("%s: fsync: %m", path);
	close(fd);
}

#endif
