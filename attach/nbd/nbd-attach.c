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

/* NBD_ATTR_SOCKETS with fds[0..n) into m: 0 or -ENOBUFS. */
static int nbdnl_put_sockets(struct nl_msg *m, const int *fds, unsigned int n)
{
	struct nlattr *socks, *item;

	socks = nla_nest_start(m, NBD_ATTR_SOCKETS);
	if (!socks)
		return -ENOBUFS;
	for (unsigned int i = 0; i < n; i++) {
		item = nla_nest_start(m, NBD_SOCK_ITEM);
		if (!item || nla_put_u32(m, NBD_SOCK_FD, (uint32_t)fds[i]) < 0)
			return -ENOBUFS;
		nla_nest_end(m, item);
	}
	nla_nest_end(m, socks);
	return 0;
}

static int nbdnl_connect(struct nbdnl *nl, const int *fds, unsigned int n, uint64_t size,
			 uint64_t bsize, uint64_t flags, const struct nbd_attach_opts *o,
			 int *index)
{
	struct nl_msg *m = nbdnl_msg(nl, NBD_CMD_CONNECT);
	uint32_t idx = UINT32_MAX;
	int ret;

	if (!m)
		return -ENOMEM;
	if (nla_put_u64(m, NBD_ATTR_SIZE_BYTES, size) < 0 ||
	    nla_put_u64(m, NBD_ATTR_BLOCK_SIZE_BYTES, bsize) < 0 ||
	    nla_put_u64(m, NBD_ATTR_SERVER_FLAGS, flags) < 0 ||
	    (o->timeout_s && nla_put_u64(m, NBD_ATTR_TIMEOUT, o->timeout_s) < 0) ||
	    (o->dead_conn_timeout_s &&
	     nla_put_u64(m, NBD_ATTR_DEAD_CONN_TIMEOUT, o->dead_conn_timeout_s) < 0) ||
	    nbdnl_put_sockets(m, fds, n) < 0)
		goto full;
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

/*
 * NBD_CMD_RECONFIGURE: fds[0..n) replace dead connections of /dev/nbdINDEX
 * (the kernel takes a dead slot for each; -ENOSPC when none is dead yet).
 * 0 or -errno.
 */
static int nbdnl_reconfigure(struct nbdnl *nl, int index, const int *fds, unsigned int n)
{
	struct nl_msg *m = nbdnl_msg(nl, NBD_CMD_RECONFIGURE);

	if (!m)
		return -ENOMEM;
	if (nla_put_u32(m, NBD_ATTR_INDEX, (uint32_t)index) < 0 ||
	    nbdnl_put_sockets(m, fds, n) < 0) {
		nlmsg_free(m);
		return -ENOBUFS;
	}
	return nbdnl_send(nl, m, "NBD_CMD_RECONFIGURE");
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

struct watcher {
	pthread_t thread;
	bool running;
};

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

static void watch_start(struct watcher *w, struct nbd_server *srv)
{
	w->running = pthread_create(&w->thread, NULL, watch_thread, srv) == 0;
	if (!w->running)
		aiol_warn("nbd: no watcher thread: a lost connection goes unnoticed");
}

static void watch_join(struct watcher *w)
{
	if (w->running)
		pthread_join(w->thread, NULL);
	w->running = false;
}

static void close_fds(int *fds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* n socketpairs: the server serves one end of each, kfds[] gets the other
 * (for the kernel; the caller closes them once the kernel holds them).
 * 0, or -errno with every kfds[] closed. */
static int serve_conns(struct nbd_server *srv, unsigned int n, int *kfds)
{
	int ret;

	for (unsigned int i = 0; i < n; i++)
		kfds[i] = -1;
	for (unsigned int i = 0; i < n; i++) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			ret = -errno;
			aiol_err("socketpair: %m");
			goto err;
		}
		kfds[i] = sv[0];
		ret = nbd_server_add_client_transmission(srv, sv[1], 0);
		if (ret < 0) {
			aiol_err("nbd: serving a connection: %s", strerror(-ret));
			goto err;
		}
	}
	return 0;

err:
	close_fds(kfds, n);
	return ret;
}

/* Whether /dev/nbdINDEX is still configured: its pid file is there (it
 * goes when the device is disconnected). */
static bool nbd_configured(int index)
{
	char path[64];
	struct stat sb;

	snprintf(path, sizeof(path), "/sys/block/nbd%d/pid", index);
	return stat(path, &sb) == 0;
}

#define RECONNECT_TRIES 20
#define RECONNECT_SETTLE_US 250000

/*
 * Give /dev/nbdINDEX n new connections to srv with NBD_CMD_RECONFIGURE.
 * The kernel puts a new socket only in a slot it has marked dead, and says
 * nothing when there is none (it reads EOF on the old socket a moment
 * after the old daemon is gone): the server then sees the socket we gave
 * closed again.  So the connections that stay are counted, and the missing
 * ones given again, for a few seconds.  0 or -errno.  Control thread.
 */
static int reconnect(struct nbdnl *nl, struct nbd_server *srv, int index, unsigned int n)
{
	int kfds[MAX_CONNS], ret = -ETIMEDOUT;
	unsigned int live = nbd_server_connections(srv);

	for (int t = 0; t < RECONNECT_TRIES && live < n; t++) {
		if (!nbd_configured(index))
			return -ENODEV;
		ret = serve_conns(srv, n - live, kfds);
		if (ret < 0)
			return ret;
		ret = nbdnl_reconfigure(nl, index, kfds, n - live);
		close_fds(kfds, n - live);
		if (ret < 0)
			return ret;
		usleep(RECONNECT_SETTLE_US);
		live = nbd_server_connections(srv);
		ret = live < n ? -ETIMEDOUT : 0;
	}
	return ret;
}

/* The device's size as the kernel has it matches the export's: 0, or
 * -ENODEV (not configured), -EINVAL (another size: not this backing). */
static int check_reconnect(int index, const struct aiol_dev_info *di)
{
	unsigned long long sectors;

	if (!nbd_configured(index) || nbd_sysfs_size(index, &sectors) < 0 || !sectors) {
		aiol_err("nbd%d: not connected: nothing to reconnect", index);
		return -ENODEV;
	}
	if (sectors != di->size >> 9) {
		aiol_err("nbd%d: %llu bytes, the backing has %llu: not reconnected", index,
			 sectors << 9, (unsigned long long)di->size);
		return -EINVAL;
	}
	return 0;
}

/* What ended wait_signal(). */
enum nbd_stop { STOP_ASKED, STOP_LOST, STOP_UPGRADE };

static enum nbd_stop wait_signal(const struct nbd_attach_opts *o, bool use_ioctl)
{
	sigset_t set;
	int sig;

	attach_daemon_sigset(&set);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGUSR1)
			return STOP_LOST;
		if (sig != ATTACH_SIG_CONTROL)
			return STOP_ASKED;
		/* the CLI sends only upgrade requests to kernel NBD daemons */
		if (!o->upgrade_request || o->upgrade_request(o->arg) < 0)
			continue;
		if (!use_ioctl && o->dead_conn_timeout_s)
			return STOP_UPGRADE;
		if (o->upgrade_done)
			o->upgrade_done(o->arg, -EOPNOTSUPP,
					use_ioctl
					    ? "attached through the ioctls (no reconnect)"
					    : "attached with --recovery fail-io (I/O would fail)");
	}
}

int nbd_attach_run(const struct nbd_attach_opts *o)
{
	struct nbd_export_opts ex = {.name = "", .stats = o->stats};
	struct nbd_server_opts so = {0};
	struct nbd_server *srv = NULL;
	struct aiol_dev *dev = NULL;
	const struct aiol_dev_info *di;
	struct nbdnl nl = {.sk = NULL};
	struct doit doit = {.fd = -1};
	struct watcher w = {.running = false};
	unsigned int n = o->nr_conns ? o->nr_conns : 1;
	int kfds[MAX_CONNS];
	uint16_t tflags = 0;
	bool use_ioctl;
	enum nbd_stop why;
	int index = o->index, ret;
	const char *env = getenv("AIOLOOP_NBD_IOCTL");

	if (n > MAX_CONNS)
		n = MAX_CONNS;
	for (unsigned int i = 0; i < n; i++)
		kfds[i] = -1;
	ret = aiol_dev_open(o->path, &o->open, &dev);
	if (ret < 0)
		goto out;
	di = aiol_dev_info(dev);
	ex.dev = dev;
	so.threads = n;
	if (o->index >= 0) {
		ret = check_reconnect(o->index, di);
		if (ret < 0)
			goto out;
	}
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

	use_ioctl = o->index < 0 && env && !strcmp(env, "1");
	if (!use_ioctl) {
		ret = nbdnl_open(&nl);
		if (ret == -ENOENT && o->index < 0) {
			aiol_debug("nbd: no netlink family 'nbd': using the ioctls");
			use_ioctl = true;
		} else if (ret < 0) {
			aiol_err("nbd: generic netlink: %s", strerror(-ret));
			goto out;
		}
	}
	if (o->index >= 0) {
		ret = reconnect(&nl, srv, o->index, n);
		if (ret < 0) {
			aiol_err("nbd%d: reconnecting: %s", o->index, strerror(-ret));
			goto out;
		}
	} else {
		ret = serve_conns(srv, n, kfds);
		if (ret < 0)
			goto out;
		if (use_ioctl)
			ret =
			    ioctl_connect(kfds, n, di->size, di->block_size, tflags, &doit, &index);
		else
			ret = nbdnl_connect(&nl, kfds, n, di->size, di->block_size, tflags, o,
					    &index);
		if (ret < 0) {
			aiol_err("nbd: connecting the kernel client: %s", strerror(-ret));
			goto out;
		}
		/* The kernel holds its own references to the sockets now. */
		close_fds(kfds, n);
	}
	watch_start(&w, srv);

	if (o->ready)
		o->ready(o->arg, index, di, 0);
	for (;;) {
		why = wait_signal(o, use_ioctl);
		if (why == STOP_UPGRADE) {
			/*
			 * Let go of the device as a killed daemon would, but
			 * with everything acknowledged on stable storage: the
			 * kernel keeps the device, I/O waits for the next
			 * daemon, and requests this one did not answer are sent
			 * again once their timeout passes.  The server is not
			 * shut down (it would answer new requests with errors);
			 * exiting closes its sockets.  If the sync fails, this
			 * daemon keeps serving.
			 */
			ret = aiol_dev_sync(dev);
			if (o->upgrade_done)
				o->upgrade_done(o->arg, ret, "syncing the backing");
			if (ret < 0)
				continue;
			aiol_info("nbd%d: left to the next daemon", index);
			return NBD_ATTACH_HANDED_OVER;
		}
		if (why != STOP_LOST)
			break;
		watch_join(&w);
		if (use_ioctl || !o->dead_conn_timeout_s) {
			aiol_warn("nbd%d: the kernel closed every connection; stopping", index);
			break;
		}
		/* A request timed out and the kernel dropped the connection: it
		 * waits for new ones (dead_conn_timeout), here they are. */
		aiol_warn("nbd%d: the kernel closed every connection; reconnecting", index);
		ret = reconnect(&nl, srv, index, n);
		if (ret < 0) {
			aiol_err("nbd%d: reconnecting: %s; stopping", index, strerror(-ret));
			break;
		}
		watch_start(&w, srv);
	}

	/* With no connection left a flush would wait for one: skip it. */
	if (why != STOP_LOST)
		attach_flush_device("/dev/nbd", (unsigned int)index);
	if (use_ioctl) {
		ioctl_disconnect(&doit);
	} else {
		int r = nbdnl_disconnect(&nl, index);

		if (r < 0)
			aiol_err("nbd%d: disconnect: %s", index, strerror(-r));
	}
	watch_join(&w);
	ret = nbd_server_shutdown(srv);
	nbd_server_destroy(srv);
	srv = NULL;
	nbdnl_close(&nl);
	aiol_dev_close(dev);
	return ret;

out:
	close_fds(kfds, n);
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
