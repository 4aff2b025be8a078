/* SPDX-License-Identifier: MIT */
/*
 * What every attach daemon (ublk or kernel NBD) agrees on about signals:
 * SIGTERM, SIGINT and SIGHUP ask it to stop; SIGUSR1 is its internal wake-up
 * (a queue thread ended, the kernel dropped every connection).  They are
 * blocked in every thread and taken by the control thread with sigwait().
 */
#ifndef AIOLOOP_UBLK_DAEMON_H
#define AIOLOOP_UBLK_DAEMON_H

#include <signal.h>

static inline void attach_daemon_sigset(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
}

#endif
