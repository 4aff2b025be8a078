// SPDX-License-Identifier: MIT
/*
 * The kernel NBD client as an attach frontend: /dev/nbdN is connected over
 * socketpairs to this process's own NBD server (nbd/server.h), whose
 * connections start directly in the transmission phase, because a kernel
 * client configured through netlink or ioctls sends no handshake: simple
 * replies, the export's size, block size and transmission flags told to
 * the kernel here.
 *
 * Configuration: generic netlink family "nbd" (NBD_CMD_CONNECT with
 * NBD_ATTR_SOCKETS, sizes and NBD_ATTR_SERVER_FLAGS; the kernel picks a
 * free index and answers it), written by hand on a NETLINK_GENERIC socket;
 * on kernels without the family, the ioctls (NBD_SET_SOCK, NBD_SET_BLKSIZE,
 * NBD_SET_SIZE_BLOCKS, NBD_SET_FLAGS, then NBD_DO_IT on a thread of its
 * own until the disconnect).  AIOLOOP_NBD_IOCTL=1 forces the ioctls.
 *
 * Thread model: the daemon's main thread configures, then sigwaits; the
 * NBD server runs its own workers (one ring each); a watcher thread waits
 * for the server to lose every connection (the kernel disconnected) and
 * wakes the main thread with SIGUSR1; the ioctl path adds the NBD_DO_IT
 * thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/nbd.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "daemon.h"
#include "nbd-attach.h"
#include "nbd/server.h"

#define NL_BUF 8192
#define MAX_CONNS 64

/* ---- generic netlink, by hand ---- */

struct nl {
	int fd;
	uint16_t family;
	uint32_t seq;
};

struct nl_msg {
	char buf[NL_BUF] __attribute__((aligned(NLMSG_ALIGNTO)));
	size_t len;
};

static void msg_init(struct nl_msg *m, uint16_t type, uint8_t cmd, uint32_t seq)
{
	struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
	struct genlmsghdr *g = NLMSG_DATA(h);

	memset(m->buf, 0, NLMSG_HDRLEN + GENL_HDRLEN);
	h->nlmsg_type = type;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	h->nlmsg_seq = seq;
	g->cmd = cmd;
	g->version = type == GENL_ID_CTRL ? 1 : NBD_GENL_VERSION;
	m->len = NLMSG_HDRLEN + GENL_HDRLEN;
}

/* Append an attribute; returns its offset (for nests) or -1 if full. */
static long msg_put(struct nl_msg *m, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a;
	size_t off = m->len;

	if (off + NLA_HDRLEN + NLA_ALIGN(len) > sizeof(m->buf))
		return -1;
	a = (struct nlattr *)(m->buf + off);
	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	if (len)
		memcpy(m->buf + off + NLA_HDRLEN, data, len);
	memset(m->buf + off + NLA_HDRLEN + len, 0, NLA_ALIGN(len) - len);
	m->len += NLA_HDRLEN + NLA_ALIGN(len);
	return (long)off;
}

static long msg_nest(struct nl_msg *m, uint16_t type)
{
	return msg_put(m, type | NLA_F_NESTED, NULL, 0);
}

static void msg_nest_end(struct nl_msg *m, long off)
{
	((struct nlattr *)(m->buf + off))->nla_len = (uint16_t)(m->len - (size_t)off);
}

static int msg_put_u32(struct nl_msg *m, uint16_t type, uint32_t v)
{
	return msg_put(m, type, &v, sizeof(v)) < 0 ? -ENOBUFS : 0;
}

static int msg_put_u64(struct nl_msg *m, uint16_t type, uint64_t v)
{
	return msg_put(m, type, &v, sizeof(v)) < 0 ? -ENOBUFS : 0;
}

/*
 * Send m and read until the ACK.  For each genl reply, cb (if any) sees
 * its top-level attributes.  Returns 0 or the kernel's -errno.
 */
static int nl_talk(struct nl *nl, struct nl_msg *m, void (*cb)(void *arg, const struct nlattr *a),
		   void *arg)
{
	struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	char rbuf[NL_BUF] __attribute__((aligned(NLMSG_ALIGNTO)));
	uint32_t seq = h->nlmsg_seq;

	h->nlmsg_len = (uint32_t)m->len;
	if (sendto(nl->fd, m->buf, m->len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(nl->fd, rbuf, sizeof(rbuf), 0);
		struct nlmsghdr *r;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (r = (struct nlmsghdr *)rbuf; NLMSG_OK(r, (unsigned int)n);
		     r = NLMSG_NEXT(r, n)) {
			if (r->nlmsg_seq != seq)
				continue;
			if (r->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(r);

				return e->error;
			}
			if (r->nlmsg_type == NLMSG_DONE)
				return 0;
			if (cb && r->nlmsg_len >= NLMSG_HDRLEN + GENL_HDRLEN) {
				const char *p = (const char *)NLMSG_DATA(r) + GENL_HDRLEN;
				int left = (int)(r->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN);

				while (left >= NLA_HDRLEN) {
					const struct nlattr *a = (const struct nlattr *)p;

					if (a->nla_len < NLA_HDRLEN || a->nla_len > left)
						break;
					cb(arg, a);
					p += NLA_ALIGN(a->nla_len);
					left -= NLA_ALIGN(a->nla_len);
				}
			}
		}
	}
}

static void family_cb(void *arg, const struct nlattr *a)
{
	if ((a->nla_type & NLA_TYPE_MASK) == CTRL_ATTR_FAMILY_ID && a->nla_len >= NLA_HDRLEN + 2)
		memcpy(arg, (const char *)a + NLA_HDRLEN, sizeof(uint16_t));
}

/* Open a generic netlink socket and resolve "nbd".  -ENOENT: no family. */
static int nl_open(struct nl *nl)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	struct nl_msg *m;
	int ret;

	nl->family = 0;
	nl->seq = 1;
	nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (nl->fd < 0)
		return -errno;
	if (bind(nl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		goto err;
	}
	m = malloc(sizeof(*m));
	if (!m) {
		ret = -ENOMEM;
		goto err;
	}
	msg_init(m, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, nl->seq++);
	msg_put(m, CTRL_ATTR_FAMILY_NAME, NBD_GENL_FAMILY_NAME, sizeof(NBD_GENL_FAMILY_NAME));
	ret = nl_talk(nl, m, family_cb, &nl->family);
	free(m);
	if (ret == 0 && !nl->family)
		ret = -ENOENT;
	if (ret < 0)
		goto err;
	return 0;
err:
	close(nl->fd);
	nl->fd = -1;
	return ret;
}

static void nl_close(struct nl *nl)
{
	if (nl->fd >= 0)
		close(nl->fd);
	nl->fd = -1;
}

static void index_cb(void *arg, const struct nlattr *a)
{
	if ((a->nla_type & NLA_TYPE_MASK) == NBD_ATTR_INDEX && a->nla_len >= NLA_HDRLEN + 4)
		memcpy(arg, (const char *)a + NLA_HDRLEN, sizeof(uint32_t));
}

static int nl_connect(struct nl *nl, const int *fds, unsigned int n, uint64_t size, uint64_t bsize,
		      uint64_t flags, int *index)
{
	struct nl_msg *m = malloc(sizeof(*m));
	uint32_t idx = UINT32_MAX;
	long socks, item;
	int ret = 0;

	if (!m)
		return -ENOMEM;
	msg_init(m, nl->family, NBD_CMD_CONNECT, nl->seq++);
	ret |= msg_put_u64(m, NBD_ATTR_SIZE_BYTES, size);
	ret |= msg_put_u64(m, NBD_ATTR_BLOCK_SIZE_BYTES, bsize);
	ret |= msg_put_u64(m, NBD_ATTR_SERVER_FLAGS, flags);
	socks = msg_nest(m, NBD_ATTR_SOCKETS);
	for (unsigned int i = 0; i < n && socks >= 0; i++) {
		item = msg_nest(m, NBD_SOCK_ITEM);
		if (item < 0 || msg_put_u32(m, NBD_SOCK_FD, (uint32_t)fds[i]) < 0) {
			ret = -ENOBUFS;
			break;
		}
		msg_nest_end(m, item);
	}
	if (socks < 0 || ret) {
		free(m);
		return -ENOBUFS;
	}
	msg_nest_end(m, socks);
	ret = nl_talk(nl, m, index_cb, &idx);
	free(m);
	if (ret == 0) {
		if (idx == UINT32_MAX)
			return -EPROTO;
		*index = (int)idx;
	}
	return ret;
}

static int nl_disconnect(struct nl *nl, int index)
{
	struct nl_msg *m = malloc(sizeof(*m));
	int ret;

	if (!m)
		return -ENOMEM;
	msg_init(m, nl->family, NBD_CMD_DISCONNECT, nl->seq++);
	msg_put_u32(m, NBD_ATTR_INDEX, (uint32_t)index);
	ret = nl_talk(nl, m, NULL, NULL);
	free(m);
	return ret;
}

/* ---- ioctl fallback ---- */

struct doit {
	pthread_t thread;
	int fd;
	int ret;
};

static void *doit_thread(void *arg)
{
	struct doit *d = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	d->ret = ioctl(d->fd, NBD_DO_IT) < 0 ? -errno : 0;
	return NULL;
}

/* /sys/block/nbdN/size (sectors): 0, -errno if the file does not open,
 * -EIO if it does not read. */
static int nbd_sysfs_size(int index, unsigned long long *sectors)
{
	char path[64], buf[32];
	FILE *f;
	int ret = 0;

	snprintf(path, sizeof(path), "/sys/block/nbd%d/size", index);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (fgets(buf, sizeof(buf), f))
		*sectors = strtoull(buf, NULL, 10);
	else
		ret = -EIO;
	fclose(f);
	return ret;
}

/* An unused /dev/nbdN: no pid file, and size 0 or no size file. */
static int find_free_nbd(void)
{
	char path[64];
	struct stat sb;

	for (int i = 0; i < 1024; i++) {
		unsigned long long sectors;
		int ret;

		snprintf(path, sizeof(path), "/dev/nbd%d", i);
		if (stat(path, &sb) < 0)
			return -ENOENT;
		snprintf(path, sizeof(path), "/sys/block/nbd%d/pid", i);
		if (stat(path, &sb) == 0)
			continue;
		ret = nbd_sysfs_size(i, &sectors);
		if ((ret == 0 && sectors == 0) || (ret < 0 && ret != -EIO))
			return i;
	}
	return -ENOENT;
}

static int ioctl_connect(const int *fds, unsigned int n, uint64_t size, uint64_t bsize,
			 uint64_t flags, struct doit *d, int *index)
{
	char path[64];
	int idx, fd, ret;

	idx = find_free_nbd();
	if (idx < 0) {
		aiol_err("nbd: no free /dev/nbdN");
		return idx;
	}
	snprintf(path, sizeof(path), "/dev/nbd%d", idx);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		aiol_err("%s: %m", path);
		return ret;
	}
	if (ioctl(fd, NBD_SET_BLKSIZE, (unsigned long)bsize) < 0 ||
	    ioctl(fd, NBD_SET_SIZE_BLOCKS, (unsigned long)(size / bsize)) < 0 ||
	    ioctl(fd, NBD_SET_FLAGS, (unsigned long)flags) < 0) {
		ret = -errno;
		aiol_err("%s: configuring: %m", path);
		goto err;
	}
	for (unsigned int i = 0; i < n; i++) {
		if (ioctl(fd, NBD_SET_SOCK, (unsigned long)fds[i]) < 0) {
			ret = -errno;
			aiol_err("%s: NBD_SET_SOCK: %m", path);
			goto err_clear;
		}
	}
	d->fd = fd;
	ret = -pthread_create(&d->thread, NULL, doit_thread, d);
	if (ret < 0)
		goto err_clear;
	/* NBD_DO_IT has started the device once the capacity shows (the pid
	 * file appears before the size is set). */
	for (int i = 0; i < 250; i++) {
		unsigned long long sectors;

		if (nbd_sysfs_size(idx, &sectors) == 0 && sectors == size >> 9)
			break;
		usleep(20000);
	}
	*index = idx;
	return 0;

err_clear:
	ioctl(fd, NBD_CLEAR_SOCK);
err:
	close(fd);
	return ret;
}

static void ioctl_disconnect(struct doit *d)
{
	ioctl(d->fd, NBD_DISCONNECT);
	pthread_join(d->thread, NULL);
	ioctl(d->fd, NBD_CLEAR_SOCK);
	close(d->fd);
	d->fd = -1;
}

/* ---- the daemon ---- */

static void *watch_thread(void *arg)
{
	struct nbd_server *srv = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	nbd_server_wait_idle(srv);
	kill(getpid(), SIGUSR1);
	return NULL;
}

static void wait_signal(void)
{
	sigset_t set;
	int sig;

	attach_daemon_sigset(&set);
	while (sigwait(&set, &sig) != 0)
		;
	if (sig == SIGUSR1)
		aiol_warn("nbd: the kernel closed every connection; stopping");
}

int nbd_attach_run(const struct nbd_attach_opts *o)
{
	struct nbd_export_opts ex = {.name = ""};
	struct nbd_server_opts so = {0};
	struct nbd_server *srv = NULL;
	struct aiol_dev *dev = NULL;
	const struct aiol_dev_info *di;
	struct nl nl = {.fd = -1};
	struct doit doit = {.fd = -1};
	unsigned int n = o->nr_conns ? o->nr_conns : 1, i;
	int kfds[MAX_CONNS];
	uint16_t tflags = 0;
	pthread_t watcher;
	bool watching = false, use_ioctl;
	int index = -1, ret;
	const char *env = getenv("AIOLOOP_NBD_IOCTL");

	if (n > MAX_CONNS)
		n = MAX_CONNS;
	for (i = 0; i < n; i++)
		kfds[i] = -1;
	ret = aiol_dev_open(o->path, &o->open, &dev);
	if (ret < 0)
		goto out;
	di = aiol_dev_info(dev);
	ex.dev = dev;
	so.threads = n;
	ret = nbd_server_create(&ex, 1, &so, &srv);
	if (ret < 0) {
		aiol_err("nbd: starting the server: %s", strerror(-ret));
		goto out;
	}
	ret = nbd_server_export_flags(srv, 0, &tflags);
	if (ret < 0)
		goto out;
	if (n > 1 && !(tflags & NBD_FLAG_CAN_MULTI_CONN))
		aiol_warn("nbd: the export does not allow several connections; using them anyway");

	for (i = 0; i < n; i++) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			ret = -errno;
			aiol_err("socketpair: %m");
			goto out;
		}
		kfds[i] = sv[0];
		ret = nbd_server_add_client_transmission(srv, sv[1], 0);
		if (ret < 0) {
			aiol_err("nbd: serving a connection: %s", strerror(-ret));
			goto out;
		}
	}

	use_ioctl = env && !strcmp(env, "1");
	if (!use_ioctl) {
		ret = nl_open(&nl);
		if (ret == -ENOENT) {
			aiol_debug("nbd: no netlink family 'nbd': using the ioctls");
			use_ioctl = true;
		} else if (ret < 0) {
			aiol_err("nbd: generic netlink: %s", strerror(-ret));
			goto out;
		}
	}
	if (use_ioctl)
		ret = ioctl_connect(kfds, n, di->size, di->block_size, tflags, &doit, &index);
	else
		ret = nl_connect(&nl, kfds, n, di->size, di->block_size, tflags, &index);
	if (ret < 0) {
		aiol_err("nbd: connecting the kernel client: %s", strerror(-ret));
		goto out;
	}
	/* The kernel holds its own references to the sockets now. */
	for (i = 0; i < n; i++) {
		close(kfds[i]);
		kfds[i] = -1;
	}
	if (pthread_create(&watcher, NULL, watch_thread, srv) == 0)
		watching = true;

	if (o->ready)
		o->ready(o->arg, index, di, 0);
	wait_signal();

	attach_flush_device("/dev/nbd", (unsigned int)index);
	if (use_ioctl) {
		ioctl_disconnect(&doit);
	} else {
		int r = nl_disconnect(&nl, index);

		if (r < 0)
			aiol_err("nbd%d: disconnect: %s", index, strerror(-r));
	}
	if (watching)
		pthread_join(watcher, NULL);
	ret = nbd_server_shutdown(srv);
	nbd_server_destroy(srv);
	srv = NULL;
	nl_close(&nl);
	aiol_dev_close(dev);
	return ret;

out:
	for (i = 0; i < n; i++)
		if (kfds[i] >= 0)
			close(kfds[i]);
	nl_close(&nl);
	if (srv)
		nbd_server_destroy(srv);
	aiol_dev_close(dev);
	if (o->ready)
		o->ready(o->arg, index, NULL, ret);
	return ret;
}

int nbd_attach_disconnect(int index)
{
	struct nl nl;
	char path[64];
	int ret, fd;

	ret = nl_open(&nl);
	if (ret == 0) {
		ret = nl_disconnect(&nl, index);
		nl_close(&nl);
		return ret;
	}
	snprintf(path, sizeof(path), "/dev/nbd%d", index);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = ioctl(fd, NBD_DISCONNECT) < 0 ? -errno : 0;
	ioctl(fd, NBD_CLEAR_SOCK);
	close(fd);
	return ret;
}

const char *nbd_attach_unavailable(char *buf, size_t len)
{
	struct nl nl;
	int ret, fd;

	ret = nl_open(&nl);
	if (ret == 0) {
		nl_close(&nl);
		return NULL;
	}
	fd = open("/dev/nbd0", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return NULL;
	}
	if (errno == ENOENT)
		snprintf(buf, len,
			 "the nbd kernel module is not loaded (no /dev/nbd0 and no "
			 "generic netlink family 'nbd'; try 'modprobe nbd')");
	else if (errno == EACCES || errno == EPERM)
		snprintf(buf, len,
			 "no permission to open /dev/nbd0 or to configure nbd over "
			 "netlink (run as root)");
	else
		snprintf(buf, len, "/dev/nbd0: %s", strerror(errno));
	return buf;
}
