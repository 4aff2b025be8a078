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
 * free index and answers it), through libnl-genl; on kernels without the
 * family, the ioctls (NBD_SET_SOCK, NBD_SET_BLKSIZE,
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
#include <linux/nbd-netlink.h>
#include <linux/nbd.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>
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

#define MAX_CONNS 64

/* ---- generic netlink (libnl) ---- */

struct nbdnl {
	struct nl_sock *sk;
	int family;
	int kerr; /* the kernel's -errno in the last error reply, 0: none */
};

static int nbdnl_err_cb(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct nbdnl *nl = arg;

	(void)who;
	nl->kerr = e->error;
	return NL_STOP;
}

/* -errno for a failed libnl call: the kernel's own answer when there was
 * one, else the nearest errno to libnl's code. */
static int nbdnl_errno(const struct nbdnl *nl, int err, const char *what)
{
	if (nl->kerr < 0)
		return nl->kerr;
	aiol_debug("nbd: netlink %s: %s", what, nl_geterror(err));
	switch (-err) {
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_PERM:
		return -EPERM;
	case NLE_NOACCESS:
		return -EACCES;
	case NLE_MSGSIZE:
		return -ENOBUFS;
	default:
		return -EIO;
	}
}

/* Send m (freed here) and wait for the kernel's ACK: 0 or -errno. */
static int nbdnl_send(struct nbdnl *nl, struct nl_msg *m, const char *what)
{
	int ret;

	nl->kerr = 0;
	ret = nl_send_sync(nl->sk, m);
	return ret < 0 ? nbdnl_errno(nl, ret, what) : 0;
}

/* Connect a generic netlink socket and resolve "nbd".  -ENOENT: no family. */
static int nbdnl_open(struct nbdnl *nl)
{
	int ret;

	nl->kerr = 0;
	nl->sk = nl_socket_alloc();
	if (!nl->sk)
		return -ENOMEM;
	nl_socket_modify_err_cb(nl->sk, NL_CB_CUSTOM, nbdnl_err_cb, nl);
	ret = genl_connect(nl->sk);
	if (ret == 0)
		ret = genl_ctrl_resolve(nl->sk, NBD_GENL_FAMILY_NAME);
	if (ret >= 0) {
		nl->family = ret;
		return 0;
	}
	ret = nbdnl_errno(nl, ret, "resolving the family 'nbd'");
	nl_socket_free(nl->sk);
	nl->sk = NULL;
	return ret;
}

static void nbdnl_close(struct nbdnl *nl)
{
	nl_socket_free(nl->sk); /* NULL is fine */
	nl->sk = NULL;
}

/* A message for the nbd family, or NULL. */
static struct nl_msg *nbdnl_msg(const struct nbdnl *nl, uint8_t cmd)
{
	struct nl_msg *m = nlmsg_alloc();

	if (m &&
	    !genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, nl->family, 0, 0, cmd, NBD_GENL_VERSION)) {
		nlmsg_free(m);
		m = NULL;
	}
	return m;
}

/* NBD_CMD_CONNECT's answer: the index the kernel picked. */
static int nbdnl_index_cb(struct nl_msg *m, void *arg)
{
	struct nlattr *a[NBD_ATTR_MAX + 1];

	if (genlmsg_parse(nlmsg_hdr(m), 0, a, NBD_ATTR_MAX, NULL) == 0 && a[NBD_ATTR_INDEX])
		*(uint32_t *)arg = nla_get_u32(a[NBD_ATTR_INDEX]);
	return NL_OK;
}

static int nbdnl_connect(struct nbdnl *nl, const int *fds, unsigned int n, uint64_t size,
			 uint64_t bsize, uint64_t flags, int *index)
{
	struct nl_msg *m = nbdnl_msg(nl, NBD_CMD_CONNECT);
	struct nlattr *socks, *item;
	uint32_t idx = UINT32_MAX;
	int ret;

	if (!m)
		return -ENOMEM;
	if (nla_put_u64(m, NBD_ATTR_SIZE_BYTES, size) < 0 ||
	    nla_put_u64(m, NBD_ATTR_BLOCK_SIZE_BYTES, bsize) < 0 ||
	    nla_put_u64(m, NBD_ATTR_SERVER_FLAGS, flags) < 0 ||
	    !(socks = nla_nest_start(m, NBD_ATTR_SOCKETS)))
		goto full;
	for (unsigned int i = 0; i < n; i++) {
		item = nla_nest_start(m, NBD_SOCK_ITEM);
		if (!item || nla_put_u32(m, NBD_SOCK_FD, (uint32_t)fds[i]) < 0)
			goto full;
		nla_nest_end(m, item);
	}
	nla_nest_end(m, socks);
	nl_socket_modify_cb(nl->sk, NL_CB_VALID, NL_CB_CUSTOM, nbdnl_index_cb, &idx);
	ret = nbdnl_send(nl, m, "NBD_CMD_CONNECT");
	nl_socket_modify_cb(nl->sk, NL_CB_VALID, NL_CB_DEFAULT, NULL, NULL);
	if (ret == 0) {
		if (idx == UINT32_MAX)
			return -EPROTO;
		*index = (int)idx;
	}
	return ret;

full:
	nlmsg_free(m);
	return -ENOBUFS;
}

static int nbdnl_disconnect(struct nbdnl *nl, int index)
{
	struct nl_msg *m = nbdnl_msg(nl, NBD_CMD_DISCONNECT);

	if (!m)
		return -ENOMEM;
	if (nla_put_u32(m, NBD_ATTR_INDEX, (uint32_t)index) < 0) {
		nlmsg_free(m);
		return -ENOBUFS;
	}
	return nbdnl_send(nl, m, "NBD_CMD_DISCONNECT");
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
	struct nbdnl nl = {.sk = NULL};
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
		ret = nbdnl_open(&nl);
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
		ret = nbdnl_connect(&nl, kfds, n, di->size, di->block_size, tflags, &index);
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
		int r = nbdnl_disconnect(&nl, index);

		if (r < 0)
			aiol_err("nbd%d: disconnect: %s", index, strerror(-r));
	}
	if (watching)
		pthread_join(watcher, NULL);
	ret = nbd_server_shutdown(srv);
	nbd_server_destroy(srv);
	srv = NULL;
	nbdnl_close(&nl);
	aiol_dev_close(dev);
	return ret;

out:
	for (i = 0; i < n; i++)
		if (kfds[i] >= 0)
			close(kfds[i]);
	nbdnl_close(&nl);
	if (srv)
		nbd_server_destroy(srv);
	aiol_dev_close(dev);
	if (o->ready)
		o->ready(o->arg, index, NULL, ret);
	return ret;
}

int nbd_attach_disconnect(int index)
{
	struct nbdnl nl;
	char path[64];
	int ret, fd;

	ret = nbdnl_open(&nl);
	if (ret == 0) {
		ret = nbdnl_disconnect(&nl, index);
		nbdnl_close(&nl);
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
	struct nbdnl nl;
	int ret, fd;

	ret = nbdnl_open(&nl);
	if (ret == 0) {
		nbdnl_close(&nl);
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
