// SPDX-License-Identifier: MIT
/*
 * --metrics ADDR: the request statistics for Prometheus, over HTTP through
 * libmicrohttpd (its own polling thread), on a loopback address or a Unix
 * socket only: the figures name exports and files, and a scrape on another
 * host goes through whatever proxy the site trusts.  GET /metrics answers
 * the Prometheus text format 0.0.4, or OpenMetrics 1.0 text when the
 * client's Accept header asks for application/openmetrics-text; anything
 * else is 404 (405 for another method).  Reading the statistics takes the
 * exports' mutexes, never the data path; it does not move their "last
 * read", which belongs to the control socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "cli.h"

#ifdef HAVE_MICROHTTPD
#include <microhttpd.h>
#endif

int cli_metrics_parse(const char *s, struct cli_metrics_addr *a, struct cli_err *err)
{
	const char *colon;
	struct in_addr v4;
	struct in6_addr v6;
	size_t hl;

	memset(a, 0, sizeof(*a));
	if (!strncmp(s, "unix:", 5)) {
		if (!s[5] || strlen(s + 5) >= sizeof(a->path)) {
			snprintf(err->msg, sizeof(err->msg),
				 "--metrics '%s': a Unix socket path of 1 to %zu bytes", s,
				 sizeof(a->path) - 1);
			return -EINVAL;
		}
		a->is_unix = true;
		snprintf(a->path, sizeof(a->path), "%s", s + 5);
		return 0;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			goto bad;
		hl = (size_t)(close - s - 1);
		colon = close + 1;
		if (hl >= sizeof(a->host))
			goto bad;
		memcpy(a->host, s + 1, hl);
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof(a->host))
			goto bad;
		memcpy(a->host, s, (size_t)(colon - s));
	}
	if (cli_parse_port("--metrics", colon + 1, a->port, sizeof(a->port), err) < 0)
		return -EINVAL;
	if (!strcmp(a->host, "localhost"))
		snprintf(a->host, sizeof(a->host), "127.0.0.1");
	if (inet_pton(AF_INET, a->host, &v4) == 1) {
		if ((ntohl(v4.s_addr) >> 24) == 127)
			return 0;
	} else if (inet_pton(AF_INET6, a->host, &v6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&v6))
			return 0;
	} else {
		goto bad;
	}
	snprintf(err->msg, sizeof(err->msg),
		 "--metrics '%s': only a loopback address (127.0.0.1, [::1], localhost) or "
		 "unix:PATH",
		 s);
	return -EINVAL;
bad:
	snprintf(err->msg, sizeof(err->msg),
		 "--metrics '%s': not HOST:PORT, [IPV6]:PORT or unix:PATH", s);
	return -EINVAL;
}

#ifdef HAVE_MICROHTTPD

struct cli_metrics {
	struct MHD_Daemon *d;
	const struct cli_stats_src *src;
	unsigned int nsrc;
	char *unix_path;
};

static enum MHD_Result metrics_page(void *cls, struct MHD_Connection *conn, const char *url,
				    const char *method, const char *version,
				    const char *upload_data, size_t *upload_data_size,
				    void **con_cls)
{
	struct cli_metrics *m = cls;
	struct MHD_Response *r;
	struct stats_snap *snaps = NULL;
	const char *accept, *type;
	unsigned int status = MHD_HTTP_OK;
	enum MHD_Result ret;
	char *buf = NULL;
	size_t len = 0;
	bool om;
	FILE *f;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		buf = strdup("GET /metrics only\n");
	} else if (strcmp(url, "/metrics")) {
		status = MHD_HTTP_NOT_FOUND;
		buf = strdup("not found: the figures are at /metrics\n");
	}
	accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	om = accept && strstr(accept, "application/openmetrics-text");
	type = status != MHD_HTTP_OK ? "text/plain; charset=utf-8"
	       : om		     ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
				     : "text/plain; version=0.0.4; charset=utf-8";
	if (status == MHD_HTTP_OK) {
		f = open_memstream(&buf, &len);
		if (!f)
			return MHD_NO;
		if (cli_stats_read(m->src, m->nsrc, false, &snaps) == 0)
			stats_prometheus(f, snaps, m->nsrc, om);
		cli_stats_free(snaps, m->nsrc);
		if (fclose(f) != 0) {
			free(buf);
			return MHD_NO;
		}
	} else if (buf) {
		len = strlen(buf);
	} else {
		return MHD_NO;
	}
	r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static int metrics_socket(const struct cli_metrics_addr *a)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		struct sockaddr_un un;
	} u;
	socklen_t sl;
	struct stat st;
	int fd, one = 1, ret;
	mode_t old = 0;

	memset(&u, 0, sizeof(u));
	if (a->is_unix) {
		u.un.sun_family = AF_UNIX;
		snprintf(u.un.sun_path, sizeof(u.un.sun_path), "%s", a->path);
		sl = sizeof(u.un);
		if (lstat(a->path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(a->path);
	} else if (inet_pton(AF_INET, a->host, &u.in.sin_addr) == 1) {
		u.in.sin_family = AF_INET;
		u.in.sin_port = htons((uint16_t)atoi(a->port));
		sl = sizeof(u.in);
	} else if (inet_pton(AF_INET6, a->host, &u.in6.sin6_addr) == 1) {
		u.in6.sin6_family = AF_INET6;
		u.in6.sin6_port = htons((uint16_t)atoi(a->port));
		sl = sizeof(u.in6);
	} else {
		return -EINVAL;
	}
	fd = socket(u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (!a->is_unix)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	else
		old = umask(0177);
	ret = bind(fd, &u.sa, sl);
	if (a->is_unix)
		umask(old);
	if (ret < 0 || listen(fd, 16) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

int cli_metrics_start(const struct cli_metrics_addr *a, const struct cli_stats_src *src,
		      unsigned int n, struct cli_metrics **out)
{
	struct cli_metrics *m = calloc(1, sizeof(*m));
	int fd;

	*out = NULL;
	if (!m)
		return -ENOMEM;
	m->src = src;
	m->nsrc = n;
	fd = metrics_socket(a);
	if (fd < 0) {
		errno = -fd;
		aiol_err("--metrics %s%s%s: %m", a->is_unix ? a->path : a->host,
			 a->is_unix ? "" : ":", a->is_unix ? "" : a->port);
		free(m);
		return fd;
	}
	m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL,
				metrics_page, m, MHD_OPTION_LISTEN_SOCKET, fd,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned int)16,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
	if (!m->d) {
		aiol_err("--metrics: libmicrohttpd would not start");
		close(fd);
		free(m);
		return -EIO;
	}
	if (a->is_unix)
		m->unix_path = strdup(a->path);
	*out = m;
	return 0;
}

void cli_metrics_stop(struct cli_metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->d); /* closes the listening socket */
	if (m->unix_path)
		unlink(m->unix_path);
	free(m->unix_path);
	free(m);
}

#else

int cli_metrics_start(const struct cli_metrics_addr *a, const struct cli_stats_src *src,
		      unsigned int n, struct cli_metrics **out)
{
	(void)a;
	(void)src;
	(void)n;
	*out = NULL;
	aiol_err("--metrics: this aioloop was built without libmicrohttpd");
	return -ENOTSUP;
}

void cli_metrics_stop(struct cli_metrics *m)
{
	(void)m;
}

#endif
