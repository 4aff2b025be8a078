// SPDX-License-Identifier: MIT
/*
 * One ublk device, from ADD_DEV to DEL_DEV, run by the daemon's main thread
 * (the control thread):
 *
 *   open the backing (engine)          or, with recover: GET_DEV_INFO,
 *   GET_FEATURES, pick the data path      START_USER_RECOVERY (retried while
 *   ADD_DEV (USER_RECOVERY[|REISSUE]      the kernel is still quiescing); the
 *     + the data path's flag)             data path is the device's own
 *   SET_PARAMS from the engine's probe
 *   open /dev/ublkcN, start one thread per queue; each submits its FETCHes
 *   START_DEV(pid)                     or END_USER_RECOVERY(pid)
 *   ready() -> the CLI reports the device and writes its state file
 *   sigwait(SIGTERM|SIGINT|SIGHUP|SIGUSR1: a queue thread ended;
 *           ATTACH_SIG_CONTROL: resize, then wait again, or upgrade:
 *           QUIESCE_DEV, then let go of the device without STOP/DEL)
 *   STOP_DEV: the kernel drains and aborts the FETCHes, the queue threads
 *   end; flush the backing; close /dev/ublkcN; DEL_DEV.
 *
 * START_DEV and END_USER_RECOVERY block until every tag's FETCH has
 * arrived and older kernels scan partitions inside START_DEV, so they are
 * sent here while the queue threads already serve I/O.
 *
 * A daemon killed with SIGKILL leaves a USER_RECOVERY device quiesced: its
 * I/O waits (REISSUE: in-flight requests are re-sent) until `aioloop attach
 * --recover` runs this file again with recover set.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "daemon.h"
#include "ublk.h"

#define UBLK_BUF_BYTES (512u << 10) /* max_io_buf_bytes: 1024 sectors per request */
#define STOP_GRACE_S 10
#define UBLK_QUIESCE_TIMEOUT_MS 30000

struct run_state {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int started;
	unsigned int exited;
	int err;
};

static void q_started(void *arg, struct ublk_queue *q, int err)
{
	struct run_state *st = arg;

	(void)q;
	pthread_mutex_lock(&st->lock);
	st->started++;
	if (err && !st->err)
		st->err = err;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

static void q_exited(void *arg, struct ublk_queue *q)
{
	struct run_state *st = arg;

	(void)q;
	pthread_mutex_lock(&st->lock);
	st->exited++;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	kill(getpid(), SIGUSR1); /* wake the control thread's sigwait */
}

static unsigned int ilog2(unsigned int v)
{
	unsigned int r = 0;

	while (v >>= 1)
		r++;
	return r;
}

static void fill_params(const struct aiol_dev_info *di, unsigned int buf_bytes,
			enum ublk_data_path dp, struct ublk_params *p)
{
	unsigned int lbs = ilog2(di->block_size);
	unsigned int pbs = lbs < 12 ? 12 : lbs;

	memset(p, 0, sizeof(*p));
	p->len = offsetof(struct ublk_params, devt); /* 6.1's size: basic + discard */
	p->types = UBLK_PARAM_TYPE_BASIC;
	if (di->read_only)
		p->basic.attrs |= UBLK_ATTR_READ_ONLY;
	if (di->caps & AIOL_CAP_ROTATIONAL)
		p->basic.attrs |= UBLK_ATTR_ROTATIONAL;
	if (!di->read_only) {
		/* So that FLUSH reaches us; FUA is honoured with RWF_DSYNC. */
		p->basic.attrs |= UBLK_ATTR_VOLATILE_CACHE;
		if (di->caps & AIOL_CAP_FUA)
			p->basic.attrs |= UBLK_ATTR_FUA;
	}
	p->basic.logical_bs_shift = (uint8_t)lbs;
	p->basic.physical_bs_shift = (uint8_t)pbs;
	p->basic.io_min_shift = (uint8_t)pbs;
	p->basic.io_opt_shift = (uint8_t)pbs;
	p->basic.max_sectors = buf_bytes >> 9;
	p->basic.dev_sectors = (di->size & ~((uint64_t)di->block_size - 1)) >> 9;
	if (!di->read_only && (di->caps & AIOL_CAP_DISCARD)) {
		p->types |= UBLK_PARAM_TYPE_DISCARD;
		p->discard.discard_granularity = di->block_size > 4096 ? di->block_size : 4096;
		p->discard.max_discard_sectors = UINT32_MAX >> 9;
		if (di->caps & AIOL_CAP_WRITE_ZEROES)
			p->discard.max_write_zeroes_sectors = UINT32_MAX >> 9;
		p->discard.max_discard_segments = 1;
	}
	if (dp == UBLK_DP_AUTO_BUF_REG || dp == UBLK_DP_ZERO_COPY) {
		/* The backing's direct I/O reads and writes the request's own
		 * pages: the block layer must align them as O_DIRECT needs
		 * (6.15+, which zero copy implies). */
		unsigned int a = di->dio_mem_align > 4 ? di->dio_mem_align : 4;

		p->len = offsetof(struct ublk_params, dma) + sizeof(p->dma);
		p->types |= UBLK_PARAM_TYPE_DMA_ALIGN;
		p->dma.alignment = (a < 4096 ? a : 4096) - 1;
	}
}

static int open_cdev(uint32_t dev_id, int *fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/ublkc%u", dev_id);
	/* Without udev the node appears through devtmpfs; give it a moment. */
	for (int i = 0; i < 100; i++) {
		*fd = open(path, O_RDWR | O_CLOEXEC);
		if (*fd >= 0)
			return 0;
		if (errno != ENOENT)
			break;
		usleep(50000);
	}
	aiol_err("open %s: %m", path);
	return -errno;
}

/* Add the device (or take over a quiesced one).  Fills info. */
static int dev_create(struct ublk_ctrl *c, const struct ublk_dev_opts *o, struct aiol_dev *dev,
		      struct ublksrv_ctrl_dev_info *info, enum ublk_data_path *dp,
		      uint64_t *features_out)
{
	const struct aiol_dev_info *di = aiol_dev_info(dev);
	struct ublk_params params;
	uint64_t features = 0, keep;
	bool have_features;
	char why[160];
	int ret;

	have_features = ublk_ctrl_get_features(c, &features) == 0;
	*features_out = have_features ? features : 0;
	if (have_features)
		aiol_debug("ublk: kernel features %#llx", (unsigned long long)features);
	else
		aiol_debug("ublk: no GET_FEATURES (kernel before 6.5): inferring from ADD_DEV");

	if (o->recover) {
		ret = ublk_ctrl_get_info(c, (uint32_t)o->dev_id, info);
		if (ret < 0) {
			aiol_err("ublk device %d: %s", o->dev_id, strerror(-ret));
			return ret;
		}
		if (!(info->flags & UBLK_F_USER_RECOVERY)) {
			aiol_err("ublk device %d was not created for recovery", o->dev_id);
			return -EINVAL;
		}
		/* The kernel quiesces the device once it has seen the old daemon
		 * go (6.1-6.6 notice it from a monitor running every 5 s). */
		for (int i = 0; i < 200; i++) {
			ret = ublk_ctrl_simple(c, UBLK_CMD_START_USER_RECOVERY, (uint32_t)o->dev_id,
					       0);
			if (ret != -EBUSY)
				break;
			usleep(100000);
		}
		if (ret < 0) {
			aiol_err("ublk device %d: START_USER_RECOVERY: %s", o->dev_id,
				 strerror(-ret));
			return ret;
		}
		*dp = ublk_data_path_of_flags(info->flags);
		return 0;
	}

	ret = ublk_pick_data_path(o->data_path, have_features ? features : 0,
				  ublk_kernel_at_least(6, 15),
				  aiol_dev_fixed_buf_ok(dev, di->block_size), dp, why, sizeof(why));
	if (ret < 0) {
		aiol_err("ublk: data path %s: %s", ublk_data_path_name(o->data_path), why);
		return ret;
	}

	memset(info, 0, sizeof(*info));
	info->nr_hw_queues = (uint16_t)(o->nr_queues ? o->nr_queues : 1);
	info->queue_depth = (uint16_t)(o->depth ? o->depth : 64);
	info->max_io_buf_bytes = UBLK_BUF_BYTES;
	info->dev_id = o->dev_id < 0 ? (uint32_t)-1 : (uint32_t)o->dev_id;
	info->ublksrv_pid = getpid();
	if (o->recovery == UBLK_REC_FAIL_IO && !(features & UBLK_F_USER_RECOVERY_FAIL_IO)) {
		aiol_err("ublk: --recovery fail-io: the kernel has no UBLK_F_USER_RECOVERY_FAIL_IO "
			 "(Linux 6.13+)");
		return -EOPNOTSUPP;
	}
	if (o->recovery != UBLK_REC_NONE && (!have_features || (features & UBLK_F_USER_RECOVERY))) {
		info->flags |= UBLK_F_USER_RECOVERY;
		if (o->recovery == UBLK_REC_FAIL_IO)
			info->flags |= UBLK_F_USER_RECOVERY_FAIL_IO;
		else if (!have_features || (features & UBLK_F_USER_RECOVERY_REISSUE))
			info->flags |= UBLK_F_USER_RECOVERY_REISSUE;
		/* a daemon can hand the device over (upgrade) */
		if (features & UBLK_F_QUIESCE)
			info->flags |= UBLK_F_QUIESCE;
	}
	if (o->no_part_scan && !(features & UBLK_F_NO_AUTO_PART_SCAN)) {
		aiol_err("ublk: --no-partscan: the kernel has no UBLK_F_NO_AUTO_PART_SCAN "
			 "(Linux 7.0+): it scans partitions when the device starts");
		return -EOPNOTSUPP;
	}
	keep = ublk_data_path_flag(*dp) | (o->no_part_scan ? UBLK_F_NO_AUTO_PART_SCAN : 0);
	info->flags |= keep;
	{
		struct ublksrv_ctrl_dev_info req = *info;

		ret = ublk_ctrl_add_dev(c, info);
		if (ret == -EINVAL && (req.flags & ~keep)) {
			aiol_warn("ublk: ADD_DEV refused recovery flags; the device will not "
				  "survive its daemon");
			*info = req;
			info->flags = keep;
			ret = ublk_ctrl_add_dev(c, info);
		}
	}
	if (ret < 0) {
		aiol_err("ublk: ADD_DEV (data path %s): %s", ublk_data_path_name(*dp),
			 strerror(-ret));
		return ret;
	}
	if (ublk_data_path_of_flags(info->flags) != *dp) {
		/* the kernel masked the flag: it is in copy mode now */
		if (o->data_path != UBLK_DP_AUTO) {
			aiol_err("ublk: the kernel refused data path %s", ublk_data_path_name(*dp));
			ublk_ctrl_simple(c, UBLK_CMD_DEL_DEV, info->dev_id, 0);
			return -EOPNOTSUPP;
		}
		*dp = ublk_data_path_of_flags(info->flags);
	}
	aiol_debug("ublk: device %u, %u queues of depth %u, flags %#llx, %s encoding, data path %s",
		   info->dev_id, info->nr_hw_queues, info->queue_depth,
		   (unsigned long long)info->flags, ublk_ctrl_ioctl_encode(c) ? "ioctl" : "legacy",
		   ublk_data_path_name(*dp));

	fill_params(di, info->max_io_buf_bytes, *dp, &params);
	ret = ublk_ctrl_set_params(c, info->dev_id, &params);
	if (ret < 0) {
		aiol_err("ublk device %u: SET_PARAMS: %s", info->dev_id, strerror(-ret));
		ublk_ctrl_simple(c, UBLK_CMD_DEL_DEV, info->dev_id, 0);
		return ret;
	}
	return 0;
}

static void wait_started(struct run_state *st, unsigned int n)
{
	pthread_mutex_lock(&st->lock);
	while (st->started < n)
		pthread_cond_wait(&st->cond, &st->lock);
	pthread_mutex_unlock(&st->lock);
}

/* Wait (bounded) until n queue threads have ended; true if they have. */
static bool wait_exited(struct run_state *st, unsigned int n, int seconds)
{
	struct timespec ts;
	bool done;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	pthread_mutex_lock(&st->lock);
	while (st->exited < n)
		if (pthread_cond_timedwait(&st->cond, &st->lock, &ts) == ETIMEDOUT)
			break;
	done = st->exited >= n;
	pthread_mutex_unlock(&st->lock);
	return done;
}

/* What the control thread needs to serve requests while the device runs. */
struct dev_ctl {
	struct ublk_ctrl *c;
	const struct ublk_dev_opts *o;
	struct aiol_dev *dev;
	uint32_t dev_id;
	uint64_t features;
	uint64_t dev_flags; /* the device's, as ADD_DEV or GET_DEV_INFO said */
};

/*
 * Online resize (ATTACH_SIG_CONTROL): the engine takes the new size first,
 * so that no request the kernel sends after UPDATE_SIZE is refused, then
 * the kernel (set_capacity_and_notify: a uevent, and a file system can
 * grow into it).  Kernels before 6.16 have no UPDATE_SIZE.
 */
static void dev_resize(struct dev_ctl *ctl)
{
	const struct ublk_dev_opts *o = ctl->o;
	const struct aiol_dev_info *di = aiol_dev_info(ctl->dev);
	uint64_t limit = 0, size;
	int ret;

	if (!o->resize_request || o->resize_request(o->arg, &limit) < 0)
		return;
	if (!(ctl->features & UBLK_F_UPDATE_SIZE)) {
		o->resize_done(o->arg, -EOPNOTSUPP, 0,
			       "this kernel cannot resize a ublk device (UBLK_U_CMD_UPDATE_SIZE, "
			       "Linux 6.16+)");
		return;
	}
	ret = aiol_dev_refresh_size(ctl->dev, limit, &size);
	if (ret < 0) {
		o->resize_done(o->arg, ret, 0, "re-reading the size of the backing failed");
		return;
	}
	size &= ~((uint64_t)di->block_size - 1);
	ret = ublk_ctrl_simple(ctl->c, UBLK_CMD_UPDATE_SIZE, ctl->dev_id, size >> 9);
	if (ret < 0) {
		aiol_err("ublk device %u: UPDATE_SIZE: %s", ctl->dev_id, strerror(-ret));
		o->resize_done(o->arg, ret, 0, "UBLK_U_CMD_UPDATE_SIZE failed");
		return;
	}
	aiol_info("ublk device %u: resized to %llu bytes", ctl->dev_id, (unsigned long long)size);
	o->resize_done(o->arg, 0, size, NULL);
}

/*
 * Upgrade (ATTACH_SIG_CONTROL): QUIESCE_DEV waits until every queue has a
 * FETCH with the kernel, stops dispatching (requests wait in the kernel)
 * and aborts the FETCHes; the queue threads then end and this daemon lets
 * go of the device, which stays quiesced until the next daemon recovers
 * it (START/END_USER_RECOVERY).  Returns true when the device is handed
 * over.
 */
static bool dev_upgrade(struct dev_ctl *ctl)
{
	const struct ublk_dev_opts *o = ctl->o;
	int ret;

	if (!o->upgrade_request || o->upgrade_request(o->arg) < 0)
		return false;
	if (!(ctl->dev_flags & UBLK_F_QUIESCE)) {
		o->upgrade_done(o->arg, -EOPNOTSUPP,
				"the device was not created with UBLK_F_QUIESCE and user recovery "
				"(Linux 6.16+, --recovery reissue or fail-io)");
		return false;
	}
	ret = ublk_ctrl_simple(ctl->c, UBLK_CMD_QUIESCE_DEV, ctl->dev_id, UBLK_QUIESCE_TIMEOUT_MS);
	if (ret < 0) {
		aiol_err("ublk device %u: QUIESCE_DEV: %s", ctl->dev_id, strerror(-ret));
		o->upgrade_done(o->arg, ret, "UBLK_U_CMD_QUIESCE_DEV failed");
		return false;
	}
	aiol_info("ublk device %u: quiesced for the next daemon", ctl->dev_id);
	o->upgrade_done(o->arg, 0, NULL);
	return true;
}

/* Serve control requests until asked to stop; true when the device was
 * handed over (upgrade) instead. */
static bool wait_stop_signal(struct run_state *st, unsigned int nq, struct dev_ctl *ctl)
{
	sigset_t set;
	int sig;

	attach_daemon_sigset(&set);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == ATTACH_SIG_CONTROL) {
			dev_resize(ctl);
			if (dev_upgrade(ctl))
				return true;
			continue;
		}
		if (sig != SIGUSR1)
			return false;
		pthread_mutex_lock(&st->lock);
		if (st->exited) {
			pthread_mutex_unlock(&st->lock);
			aiol_err("ublk: a queue thread ended; stopping the device (%u queues)", nq);
			return false;
		}
		pthread_mutex_unlock(&st->lock);
	}
}

int ublk_dev_run(const struct ublk_dev_opts *o)
{
	struct run_state st = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	struct ublksrv_ctrl_dev_info info;
	struct ublk_queue **queues = NULL;
	struct ublk_ctrl *c = NULL;
	struct aiol_dev *dev = NULL;
	enum ublk_data_path dp = UBLK_DP_COPY;
	uint64_t features = 0;
	unsigned int nq = 0, i;
	int cdev = -1, ret, dev_id = o->dev_id;
	bool created = false, readied = false, handed_over = false;

	ret = aiol_dev_open(o->path, &o->open, &dev);
	if (ret < 0)
		goto fail;
	ret = ublk_ctrl_open(&c);
	if (ret < 0) {
		aiol_err("%s: %s", UBLK_CONTROL_PATH, strerror(-ret));
		goto fail;
	}
	ret = dev_create(c, o, dev, &info, &dp, &features);
	if (ret < 0)
		goto fail;
	created = !o->recover; /* a failed recovery leaves the device as it was */
	dev_id = (int)info.dev_id;
	ret = open_cdev(info.dev_id, &cdev);
	if (ret < 0)
		goto fail_del;

	queues = calloc(info.nr_hw_queues, sizeof(*queues));
	if (!queues) {
		ret = -ENOMEM;
		goto fail_del;
	}
	for (i = 0; i < info.nr_hw_queues; i++) {
		struct ublk_queue_cfg qc = {
		    .dev = dev,
		    .cdev_fd = cdev,
		    .q_id = i,
		    .depth = info.queue_depth,
		    .buf_bytes = info.max_io_buf_bytes,
		    .data_path = dp,
		    .poll_us = o->poll_us < 0 ? 0
			       : o->poll_us   ? (unsigned int)o->poll_us
					      : UBLK_DEFAULT_POLL_US,
		    .ioctl_encode = ublk_ctrl_ioctl_encode(c),
		    .stats = o->stats,
		    .started = q_started,
		    .exited = q_exited,
		    .arg = &st,
		};

		ret = ublk_queue_start(&qc, &queues[i]);
		if (ret < 0) {
			aiol_err("ublk: starting queue thread %u: %s", i, strerror(-ret));
			break;
		}
		nq++;
	}
	wait_started(&st, nq);
	if (ret == 0 && st.err)
		ret = st.err;
	if (ret == 0) {
		unsigned int nr = o->recover ? UBLK_CMD_END_USER_RECOVERY : UBLK_CMD_START_DEV;

		ret = ublk_ctrl_simple(c, nr, info.dev_id, (uint64_t)getpid());
		if (ret < 0)
			aiol_err("ublk device %u: %s: %s", info.dev_id,
				 o->recover ? "END_USER_RECOVERY" : "START_DEV", strerror(-ret));
	}
	if (ret < 0)
		goto stop;

	created = true;
	readied = true;
	if (o->data_path_out)
		*o->data_path_out = dp;
	if (o->ready)
		o->ready(o->arg, dev_id, aiol_dev_info(dev), 0);
	{
		struct dev_ctl ctl = {.c = c,
				      .o = o,
				      .dev = dev,
				      .dev_id = info.dev_id,
				      .features = features,
				      .dev_flags = info.flags};

		handed_over = wait_stop_signal(&st, nq, &ctl);
	}

	/* Write back what the page cache holds for the disk (and FLUSH it)
	 * while every queue still serves I/O. */
	pthread_mutex_lock(&st.lock);
	i = st.exited;
	pthread_mutex_unlock(&st.lock);
	if (handed_over)
		created = false; /* the next daemon's: neither stop nor delete it */
	else if (i == 0)
		attach_flush_device("/dev/ublkb", info.dev_id);

stop:
	ret = ret < 0 ? ret : 0;
	if (created) {
		int r = ublk_ctrl_simple(c, UBLK_CMD_STOP_DEV, info.dev_id, 0);

		if (r < 0)
			aiol_debug("ublk device %u: STOP_DEV: %s", info.dev_id, strerror(-r));
	}
	/* Handed over: the FETCHes come back aborted, requests still with the
	 * engine are committed first. */
	for (i = 0; i < nq; i++)
		ublk_queue_stop(queues[i], !created && !handed_over);
	if (!wait_exited(&st, nq, created || handed_over ? STOP_GRACE_S : 1)) {
		aiol_warn("ublk device %u: queues still busy after %d s; tearing them down",
			  info.dev_id, STOP_GRACE_S);
		for (i = 0; i < nq; i++)
			ublk_queue_stop(queues[i], true);
	}
	for (i = 0; i < nq; i++) {
		int r = ublk_queue_join(queues[i]);

		if (r < 0 && ret == 0)
			ret = r;
	}
	free(queues);
	queues = NULL;
	{
		int r = aiol_dev_sync(dev);

		if (r < 0) {
			aiol_err("%s: flush: %s", o->path, strerror(-r));
			if (ret == 0)
				ret = r;
		}
	}
fail_del:
	if (cdev >= 0)
		close(cdev);
	if (created) {
		int r = ublk_ctrl_simple(c, UBLK_CMD_DEL_DEV, info.dev_id, 0);

		if (r < 0)
			aiol_err("ublk device %u: DEL_DEV: %s", info.dev_id, strerror(-r));
	}
fail:
	if (!readied && o->ready)
		o->ready(o->arg, dev_id, NULL, ret < 0 ? ret : -EIO);
	ublk_ctrl_close(c);
	aiol_dev_close(dev);
	return ret == 0 && handed_over ? UBLK_DEV_HANDED_OVER : ret;
}

int ublk_dev_remove(uint32_t dev_id)
{
	struct ublk_ctrl *c;
	int ret;

	ret = ublk_ctrl_open(&c);
	if (ret < 0)
		return ret;
	ret = ublk_ctrl_simple(c, UBLK_CMD_STOP_DEV, dev_id, 0);
	if (ret < 0 && ret != -ENODEV)
		aiol_debug("ublk device %u: STOP_DEV: %s", dev_id, strerror(-ret));
	ret = ublk_ctrl_simple(c, UBLK_CMD_DEL_DEV, dev_id, 0);
	ublk_ctrl_close(c);
	return ret;
}

const char *ublk_unavailable(char *buf, size_t len)
{
	struct ublk_ctrl *c;
	struct stat sb;
	int ret;

	ret = ublk_ctrl_open(&c);
	if (ret == 0) {
		ublk_ctrl_close(c);
		return NULL;
	}
	if (ret == -ENOENT) {
		if (stat("/sys/module/ublk_drv", &sb) == 0)
			snprintf(buf, len, "%s is missing although ublk_drv is loaded",
				 UBLK_CONTROL_PATH);
		else
			snprintf(buf, len,
				 "the ublk_drv kernel module is not loaded "
				 "(%s missing; try 'modprobe ublk_drv')",
				 UBLK_CONTROL_PATH);
	} else if (ret == -EACCES || ret == -EPERM) {
		snprintf(buf, len, "no permission to open %s (run as root)", UBLK_CONTROL_PATH);
	} else {
		snprintf(buf, len, "%s: %s", UBLK_CONTROL_PATH, strerror(-ret));
	}
	return buf;
}
