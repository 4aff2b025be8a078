// SPDX-License-Identifier: MIT
/*
 * Listeners (listen.h): TCP, Unix socket, systemd socket activation, and a
 * poll()-based accept loop.  Runs on the caller's thread; the only shared
 * object it touches is the server, through nbd_server_add_client().
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "nbd/listen.h"

#define BACKLOG 128

static int add_fd(struct nbd_listen *l, int fd)
{
	if (l->n >= NBD_LISTEN_MAX) {
		close(fd);
		aiol_err("nbd: more than %u listening sockets", NBD_LISTEN_MAX);
		return -EMFILE;
	}
	l->fds[l->n++] = fd;
	return 0;
}

int nbd_listen_tcp(struct nbd_listen *l, const char *host, const char *port)
{
	struct addrinfo hints =
			    {
				.ai_family = AF_UNSPEC,
				.ai_socktype = SOCK_STREAM,
				.ai_flags = AI_PASSIVE | AI_ADDRCONFIG,
			    },
			*res, *ai;
	unsigned int bound = 0;
	int ret, fd, one = 1, err = 0;

	if (!host)
		host = "localhost";
	ret = getaddrinfo(host, port ? port : NBD_DEFAULT_PORT, &hints, &res);
	if (ret) {
		aiol_err("nbd: cannot resolve %s:%s: %s", host, port, gai_strerror(ret));
		return -EINVAL;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, BACKLOG) < 0) {
			err = -errno;
			close(fd);
			continue;
		}
		if (add_fd(l, fd) == 0)
			bound++;
	}
	freeaddrinfo(res);
	if (!bound) {
		aiol_err("nbd: cannot listen on %s:%s: %s", host, port ? port : NBD_DEFAULT_PORT,
			 strerror(-err));
		return err ? err : -EADDRNOTAVAIL;
	}
	return 0;
}

int nbd_listen_unix(struct nbd_listen *l, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		aiol_err("nbd: socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* a stale socket from an earlier run */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, BACKLOG) < 0) {
		ret = -errno;
		aiol_err("nbd: cannot listen on %s: %m", path);
		close(fd);
		return ret;
	}
	l->unix_path = strdup(path);
	return add_fd(l, fd);
}

int nbd_listen_systemd(struct nbd_listen *l)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	char *end;
	long n;

	if (!pid || !fds)
		return 0;
	if (strtol(pid, &end, 10) != (long)getpid() || *end)
		return 0;
	n = strtol(fds, &end, 10);
	if (*end || n <= 0 || n > NBD_LISTEN_MAX) {
		aiol_err("nbd: bad LISTEN_FDS=%s", fds);
		return -EINVAL;
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	for (long i = 0; i < n; i++) {
		int fd = 3 + (int)i;

		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (add_fd(l, fd) < 0)
			return -EMFILE;
	}
	return (int)n;
}

int nbd_listen_run(struct nbd_listen *l, struct nbd_server *srv, int stop_fd)
{
	struct pollfd p[NBD_LISTEN_MAX + 1];
	unsigned int n = l->n;

	for (unsigned int i = 0; i < n; i++)
		p[i] = (struct pollfd){.fd = l->fds[i], .events = POLLIN};
	p[n] = (struct pollfd){.fd = stop_fd, .events = POLLIN};
	for (;;) {
		if (poll(p, n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[n].revents)
			return 0;
		for (unsigned int i = 0; i < n; i++) {
			int fd;

			if (!p[i].revents)
				continue;
			fd = accept4(l->fds[i], NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0) {
				if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
					aiol_warn("nbd: accept: %m");
				if (errno == EMFILE || errno == ENFILE)
					usleep(100000); /* let connections close */
				continue;
			}
			aiol_debug("nbd: new client");
			nbd_server_add_client(srv, fd); /* fd is the server's now */
		}
	}
}

void nbd_listen_close(struct nbd_listen *l)
{
	for (unsigned int i = 0; i < l->n; i++)
		close(l->fds[i]);
	l->n = 0;
	if (l->unix_path) {
		unlink(l->unix_path);
		free(l->unix_path);
		l->unix_path = NULL;
	}
}
