// SPDX-License-Identifier: MIT
/*
 * The control socket of a running server or device daemon: a Unix socket
 * (by default /run/aioloop/serve-PID.ctl or /run/aioloop/DEV.ctl, mode 0600,
 * so root only) through which 'aioloop stats' and 'aioloop list' read the
 * request statistics.  One request per connection: a line "dump" (the
 * stats dump, which 'aioloop stats' parses; it marks the reading as the
 * "last read") or "json" (the same as JSON, for a human with socat), then
 * the answer and end of stream.
 *
 * Thread model: one thread of its own, serving clients one at a time with
 * a bounded wait for the request line; it reads the statistics through
 * stats_export_read (the exports' mutexes, never the data path).  Started
 * and stopped by the main thread, with every signal blocked.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "cli.h"

#define CTL_REQ_TIMEOUT_MS 2000

struct cli_ctl {
	int fd, stop[2];
	char *path;
	pthread_t thread;
	const struct cli_stats_src *src;
	unsigned int nsrc;
};

int cli_stats_read(const struct cli_stats_src *src, unsigned int n, bool mark,
		   struct stats_snap **out)
{
	struct stats_snap *s = calloc(n ? n : 1, sizeof(*s));

	*out = s;
	if (!s)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++) {
		stats_export_read(src[i].sx, &s[i], mark);
		snprintf(s[i].name, sizeof(s[i].name), "%s", src[i].name ? src[i].name : "");
		snprintf(s[i].kind, sizeof(s[i].kind), "%s", src[i].kind ? src[i].kind : "");
		snprintf(s[i].path, sizeof(s[i].path), "%s", src[i].path ? src[i].path : "");
		snprintf(s[i].device, sizeof(s[i].device), "%s",
			 src[i].device ? src[i].device : "");
	}
	return 0;
}

void cli_stats_free(struct stats_snap *s, unsigned int n)
{
	for (unsigned int i = 0; s && i < n; i++)
		stats_snap_free(&s[i]);
	free(s);
}

static void ctl_serve_one(struct cli_ctl *c, int fd)
{
	char req[64], *buf = NULL;
	size_t got = 0, len = 0, off = 0;
	struct stats_snap *snaps;
	FILE *f;

	while (got < sizeof(req) - 1 && !memchr(req, '\n', got)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, CTL_REQ_TIMEOUT_MS) <= 0)
			return;
		n = read(fd, req + got, sizeof(req) - 1 - got);
		if (n <= 0)
			return;
		got += (size_t)n;
	}
	req[got] = '\0';
	req[strcspn(req, "\r\n")] = '\0';
	f = open_memstream(&buf, &len);
	if (!f)
		return;
	if (!strcmp(req, "dump") || !strcmp(req, "json")) {
		if (cli_stats_read(c->src, c->nsrc, !strcmp(req, "dump"), &snaps) == 0) {
			if (!strcmp(req, "dump"))
				stats_dump(f, (long)getpid(), snaps, c->nsrc);
			else
				stats_json(f, (long)getpid(), snaps, c->nsrc);
		}
		cli_stats_free(snaps, c->nsrc);
	} else {
		fprintf(f, "error: unknown request '%s' (dump or json)\n", req);
	}
	if (fclose(f) != 0)
		return;
	while (off < len) {
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	free(buf);
}

static void *ctl_thread(void *arg)
{
	struct cli_ctl *c = arg;
	const struct timeval send_timeout = {.tv_sec = CTL_REQ_TIMEOUT_MS / 1000};

	for (;;) {
		struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
				      {.fd = c->stop[0], .events = POLLIN}};
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		/* A client that does not read must not hold the thread. */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
		ctl_serve_one(c, fd);
		close(fd);
	}
	return NULL;
}

int cli_ctl_start(const char *path, const struct cli_stats_src *src, unsigned int n,
		  struct cli_ctl **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct cli_ctl *c;
	struct stat st;
	mode_t old;
	int ret;

	*out = NULL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->src = src;
	c->nsrc = n;
	c->stop[0] = c->stop[1] = -1;
	c->path = strdup(path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!c->path || c->fd < 0 || pipe2(c->stop, O_CLOEXEC) < 0) {
		ret = c->path ? -errno : -ENOMEM;
		goto err;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* a stale socket from an earlier run */
	old = umask(0177);    /* srw------- from the start: root's only */
	ret = bind(c->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret < 0 || listen(c->fd, 16) < 0) {
		ret = -errno;
		goto err;
	}
	ret = -pthread_create(&c->thread, NULL, ctl_thread, c);
	if (ret < 0) {
		unlink(path);
		goto err;
	}
	*out = c;
	return 0;
err:
	if (c->fd >= 0)
		close(c->fd);
	if (c->stop[0] >= 0) {
		close(c->stop[0]);
		close(c->stop[1]);
	}
	free(c->path);
	free(c);
	return ret;
}

void cli_ctl_stop(struct cli_ctl *c)
{
	if (!c)
		return;
	if (write(c->stop[1], "x", 1) != 1)
		aiol_warn("control socket: cannot stop its thread: %m");
	pthread_join(c->thread, NULL);
	unlink(c->path);
	close(c->fd);
	close(c->stop[0]);
	close(c->stop[1]);
	free(c->path);
	free(c);
}

/* Remove the sockets of servers that died without cleaning up (SIGKILL):
 * serve-PID.ctl whose PID is gone. */
static void ctl_remove_stale(void)
{
	DIR *d = opendir(CLI_RUN_DIR);
	struct dirent *e;
	char path[300];
	long pid;
	int end;

	if (!d)
		return;
	while ((e = readdir(d))) {
		end = 0;
		if (sscanf(e->d_name, "serve-%ld.ctl%n", &pid, &end) != 1 ||
		    e->d_name[end] != '\0' || pid <= 0 || pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
			snprintf(path, sizeof(path), CLI_RUN_DIR "/%s", e->d_name);
			unlink(path);
		}
	}
	closedir(d);
}

int cli_ctl_default_path(const char *name, char *buf, size_t len)
{
	if (mkdir(CLI_RUN_DIR, 0755) < 0 && errno != EEXIST)
		return -errno;
	ctl_remove_stale();
	snprintf(buf, len, CLI_RUN_DIR "/%s.ctl", name);
	return 0;
}

int cli_observe_start(const char *path, const char *default_name, const struct cli_metrics_addr *ma,
		      const struct cli_stats_src *src, unsigned int n, struct cli_ctl **ctl,
		      struct cli_metrics **metrics)
{
	char buf[108];
	int ret;

	*ctl = NULL;
	*metrics = NULL;
	if (!path) {
		/* The default: quietly none where CLI_RUN_DIR is not ours. */
		ret = cli_ctl_default_path(default_name, buf, sizeof(buf));
		if (ret == 0)
			ret = cli_ctl_start(buf, src, n, ctl);
		if (ret < 0)
			aiol_debug("no control socket in " CLI_RUN_DIR ": %s", strerror(-ret));
	} else if (*path && strcmp(path, "none")) {
		ret = cli_ctl_start(path, src, n, ctl);
		if (ret < 0) {
			aiol_err("--control %s: %s", path, strerror(-ret));
			return ret;
		}
	}
	if (ma) {
		ret = cli_metrics_start(ma, src, n, metrics);
		if (ret < 0) {
			cli_ctl_stop(*ctl);
			*ctl = NULL;
			return ret;
		}
	}
	return 0;
}
