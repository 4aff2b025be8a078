// SPDX-License-Identifier: MIT
/*
 * aioloop attach / detach / list: a backing file as a kernel block device,
 * with losetup's habits.
 *
 * attach forks a daemon (setsid) that serves the device (ublk: attach/ublk/dev.c;
 * kernel NBD client: attach/nbd/nbd-attach.c), waits on a pipe until the device
 * is live, prints its path and exits 0; on failure it prints the daemon's
 * reason and exits 1.  The daemon keeps its state in /run/aioloop/NAME
 * (key=value lines: the device, backing file, offset, size limit,
 * read-only, direct I/O in effect, engine, daemon pid, ...) and logs to
 * /run/aioloop/NAME.log once detached from the terminal.
 *
 * detach sends the daemon SIGTERM (it flushes, stops and removes the
 * device) and waits until it is gone; a ublk device whose daemon died is
 * stopped and deleted directly.  list reads the state files.  resize leaves
 * a request in STATE_DIR/NAME.resize and signals the daemon
 * (ATTACH_SIG_CONTROL), which answers in NAME.resized.  A ublk device also
 * follows its backing where the store watches it (an RBD image resized by
 * another client): the store's on_resize callback raises the same signal,
 * and the daemon re-reads the size as for `aioloop resize DEVICE`.
 *
 * Thread model: the CLI is single-threaded; the daemon's main thread
 * becomes the device's control thread with SIGTERM, SIGINT, SIGHUP and
 * SIGUSR1 blocked in every thread (it takes them with sigwait()).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "aioloop/store.h"
#include "cli.h"
#include "daemon.h"
#include "nbd-attach.h"
#include "ublk.h"
#include "attach-state.h"
#include "region.h"

_Static_assert(ATTACH_MAX_DEPTH == UBLK_MAX_QUEUE_DEPTH, "--depth's bound is ublk's");

struct attach_ctx {
	struct att_state st;
	int pipe_fd; /* daemon -> CLI */
	/* statistics: what the frontends count into, and who reads it */
	struct stats_export stats;
	struct cli_stats_src src;
	const char *control;
	const struct cli_metrics_addr *metrics_addr;
	struct cli_ctl *ctl;
	struct cli_metrics *metrics;
	enum ublk_data_path data_path; /* ublk: asked, then the one in use */
	int poll_us;
	uint64_t resize_limit; /* the size limit of the resize in progress */
	/* the backing's size changed (on_resize, a store's thread); and the
	 * resize in progress is that one, which nobody waits an answer for */
	atomic_bool resize_auto_asked;
	bool resize_auto;
	bool handed_over; /* upgrade: the device was left to the next daemon */
	enum ublk_recovery recovery;
};

/* ---- the daemon side ---- */

/* The frontend's ready() callback: the device is live (err 0) or failed. */
static void dev_ready(void *arg, int dev_id, const struct aiol_dev_info *di, int err)
{
	struct attach_ctx *ctx = arg;
	struct att_state *s = &ctx->st;
	char msg[PATH_MAX + 16], log[PATH_MAX];
	int fd, n;

	if (err == 0) {
		s->dev_id = dev_id;
		if (!strcmp(s->type, "ublk"))
			snprintf(s->name, sizeof(s->name), "ublkb%d", dev_id);
		else
			snprintf(s->name, sizeof(s->name), "nbd%d", dev_id);
		snprintf(s->device, sizeof(s->device), "/dev/%s", s->name);
		s->pid = getpid();
		s->size = di->size;
		s->block_size = di->block_size;
		s->ro = di->read_only;
		s->direct = di->direct;
		snprintf(s->engine, sizeof(s->engine), "%s", aiol_engine_name(di->engine));
		snprintf(s->data_path, sizeof(s->data_path), "%s",
			 strcmp(s->type, "ublk") ? "-" : ublk_data_path_name(ctx->data_path));
		err = state_write(s);
	}
	if (err == 0 && !cli_stderr_is_journal()) {
		/* From now on the daemon is on its own: log to a file (under
		 * systemd, the journal keeps its lines). */
		state_path(s->name, ".log", log, sizeof(log));
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
	}
	if (err == 0) {
		aiol_info("%s: serving %s%s", s->device, s->backing, s->ro ? " (read-only)" : "");
		ctx->src = (struct cli_stats_src){.sx = &ctx->stats,
						  .name = s->name,
						  .kind = s->type,
						  .path = s->backing,
						  .device = s->device};
		if (cli_observe_start(ctx->control, s->name, ctx->metrics_addr, &ctx->src, 1,
				      &ctx->ctl, &ctx->metrics) < 0)
			aiol_warn("%s: serving without statistics outside the process", s->device);
		cli_notify("READY=1\nSTATUS=%s: %s%s", s->device, s->backing,
			   s->ro ? " (read-only)" : "");
		n = snprintf(msg, sizeof(msg), "OK %s\n", s->device);
	} else {
		n = snprintf(msg, sizeof(msg), "ERR %s\n", strerror(-err));
	}
	if (ctx->pipe_fd >= 0) {
		if (write(ctx->pipe_fd, msg, (size_t)n) < 0)
			aiol_debug("attach: report to the CLI: %m");
		close(ctx->pipe_fd);
		ctx->pipe_fd = -1;
	}
}

/* Answer a control request in STATE_DIR/NAME<suffix>: "OK DETAIL" or
 * "ERR why: error", written whole with a rename. */
static void control_answer(const char *name, const char *suffix, int err, const char *detail,
			   const char *why)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	FILE *f;

	state_path(name, suffix, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f) {
		aiol_err("%s: %m", tmp);
		return;
	}
	if (err == 0)
		fprintf(f, "OK %s\n", detail ? detail : "");
	else
		fprintf(f, "ERR %s: %s\n", why ? why : "failed", strerror(-err));
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		aiol_err("%s: %m", path);
}

/* The daemon side of `aioloop resize`: the request is STATE_DIR/NAME.resize
 * ("sizelimit=N", 0: re-read the backing), the answer NAME.resized ("OK
 * SIZE" or "ERR why"), written whole with a rename. */
static int resize_request(void *arg, uint64_t *sizelimit)
{
	struct attach_ctx *ctx = arg;
	char path[PATH_MAX], line[64];
	unsigned long long v;
	FILE *f;
	int ret = -ENOENT;

	ctx->resize_auto = false;
	state_path(ctx->st.name, ".resize", path, sizeof(path));
	f = fopen(path, "re");
	if (!f) {
		/* Not asked by `aioloop resize`: the store saw the backing
		 * change size (resize_on_backing), so re-read it. */
		if (!atomic_exchange(&ctx->resize_auto_asked, false))
			return -ENOENT;
		ctx->resize_auto = true;
		ctx->resize_limit = 0;
		*sizelimit = 0;
		return 0;
	}
	if (fgets(line, sizeof(line), f) && sscanf(line, "sizelimit=%llu", &v) == 1) {
		*sizelimit = v;
		ctx->resize_limit = v;
		ret = 0;
	}
	fclose(f);
	unlink(path);
	return ret;
}

static void resize_done(void *arg, int err, uint64_t size, const char *why)
{
	struct attach_ctx *ctx = arg;
	struct att_state *s = &ctx->st;
	char detail[32];

	if (err == 0) {
		s->size = size;
		s->sizelimit = ctx->resize_limit ? ctx->resize_limit : s->sizelimit;
		state_write(s);
	}
	if (ctx->resize_auto) {
		if (err < 0)
			aiol_warn("%s: the backing changed size; the device keeps its own: %s",
				  s->device, why);
		return;
	}
	snprintf(detail, sizeof(detail), "%" PRIu64, size);
	control_answer(s->name, ".resized", err, detail, why);
}

/* on_resize (a thread of the store's): the backing changed size under the
 * device; the control thread resizes it as `aioloop resize` would. */
static void resize_on_backing(void *arg)
{
	struct attach_ctx *ctx = arg;

	atomic_store(&ctx->resize_auto_asked, true);
	kill(getpid(), ATTACH_SIG_CONTROL);
}

/* The daemon side of `aioloop upgrade`: STATE_DIR/NAME.upgrade asks, the
 * answer is NAME.upgraded. */
static int upgrade_request(void *arg)
{
	struct attach_ctx *ctx = arg;
	char path[PATH_MAX];

	state_path(ctx->st.name, ".upgrade", path, sizeof(path));
	return unlink(path) == 0 ? 0 : -ENOENT;
}

static void upgrade_done(void *arg, int err, const char *why)
{
	struct attach_ctx *ctx = arg;

	control_answer(ctx->st.name, ".upgraded", err, NULL, why);
	ctx->handed_over = err == 0;
}

static int daemon_main(struct attach_ctx *ctx, const struct aiol_open_opts *oo, bool recover)
{
	struct att_state *s = &ctx->st;
	sigset_t set;
	int ret, fd;

	attach_daemon_sigset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	stats_export_init(&ctx->stats);
	signal(SIGPIPE, SIG_IGN);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO); /* stdout is the CLI's: never hold it */
		close(fd);
	}

	if (!strcmp(s->type, "ublk")) {
		struct ublk_dev_opts uo = {
		    .path = s->backing,
		    .open = *oo,
		    .nr_queues = s->queues,
		    .depth = s->depth,
		    .dev_id = recover ? s->dev_id : -1,
		    .recover = recover,
		    .data_path = ctx->data_path,
		    .poll_us = ctx->poll_us,
		    .data_path_out = &ctx->data_path,
		    .resize_request = resize_request,
		    .resize_done = resize_done,
		    .recovery = ctx->recovery,
		    .no_part_scan = s->partscan == 0,
		    .upgrade_request = upgrade_request,
		    .upgrade_done = upgrade_done,
		    .ready = dev_ready,
		    .arg = ctx,
		    .stats = &ctx->stats,
		};

		/* A device follows its backing where the store can tell. */
		uo.open.on_resize = resize_on_backing;
		uo.open.resize_arg = ctx;
		ret = ublk_dev_run(&uo);
	} else {
		struct nbd_attach_opts no = {
		    .path = s->backing,
		    .open = *oo,
		    .nr_conns = s->queues,
		    .index = recover ? s->dev_id : -1,
		    .timeout_s = s->nbd_timeout,
		    .dead_conn_timeout_s = s->nbd_dead_conn,
		    .upgrade_request = upgrade_request,
		    .upgrade_done = upgrade_done,
		    .ready = dev_ready,
		    .arg = ctx,
		    .stats = &ctx->stats,
		};

		ret = nbd_attach_run(&no);
	}
	cli_notify("STOPPING=1\nSTATUS=%s: stopped", s->device[0] ? s->device : s->backing);
	cli_metrics_stop(ctx->metrics);
	cli_ctl_stop(ctx->ctl);
	if (ctx->handed_over && ret >= 0) {
		/* the next daemon takes the state over */
		aiol_info("%s: handed over to the next daemon", s->device);
		return 0;
	}
	/* The state goes with a device this daemon served; a --recover that
	 * failed leaves it for another try (or detach). */
	if (ctx->pipe_fd < 0 && s->name[0] && s->pid == getpid()) {
		state_remove(s->name);
		if (ret == 0)
			log_remove(s->name);
	}
	return ret < 0 ? 1 : 0;
}

/* ---- attach -L: overlapping regions ---- */

/* The region [offset, offset + sizelimit) of backing: 0, or -errno when
 * it cannot be looked at. */
static int backing_region(const char *backing, uint64_t offset, uint64_t sizelimit,
			  struct att_region *r)
{
	struct stat sb;

	if (aiol_rbd_name(backing))
		return -EOPNOTSUPP;
	if (stat(backing, &sb) < 0)
		return -errno;
	/* a block device is its device number (no file has inode 0) */
	r->dev = S_ISBLK(sb.st_mode) ? sb.st_rdev : sb.st_dev;
	r->ino = S_ISBLK(sb.st_mode) ? 0 : sb.st_ino;
	r->offset = offset;
	r->sizelimit = sizelimit;
	return 0;
}

struct overlap_scan {
	struct att_region want;
	struct att_state overlap, same; /* the first of each found */
	bool has_overlap, has_same;
};

static int overlap_cb(const char *name, void *arg)
{
	struct overlap_scan *o = arg;
	struct att_state s;
	struct att_region r;

	if (state_read(name, &s) < 0 || backing_region(s.backing, s.offset, s.sizelimit, &r) < 0)
		return 0;
	switch (region_overlap(&o->want, &r)) {
	case REGION_OVERLAP:
		if (!o->has_overlap)
			o->overlap = s;
		o->has_overlap = true;
		break;
	case REGION_SAME:
		if (!o->has_same)
			o->same = s;
		o->has_same = true;
		break;
	case REGION_APART:
		break;
	}
	return 0;
}

/*
 * attach -L, as losetup's --nooverlap: refuse a region that overlaps an
 * attached device's; a device serving the very same region with the same
 * settings is used instead of a new one (its path printed).  Returns 0
 * (attach), 1 (refused, said why) or 2 (reused).
 */
static int check_overlap(const struct att_state *s, const struct aiol_open_opts *oo)
{
	struct overlap_scan o = {.has_overlap = false};
	int ret;

	ret = backing_region(s->backing, s->offset, s->sizelimit, &o.want);
	if (ret < 0) {
		fprintf(stderr, "aioloop: %s: -L: %s\n", s->backing,
			ret == -EOPNOTSUPP ? "needs a local file" : strerror(-ret));
		return 1;
	}
	for_each_state(overlap_cb, &o);
	if (o.has_overlap) {
		fprintf(
		    stderr,
		    "aioloop: %s: %s already serves an overlapping region of it (offset %" PRIu64
		    ", size limit %" PRIu64 "); not attached (-L)\n",
		    s->backing, o.overlap.device, o.overlap.offset, o.overlap.sizelimit);
		return 1;
	}
	if (!o.has_same)
		return 0;
	if (o.same.ro != oo->read_only || strcmp(o.same.encrypt, s->encrypt) ||
	    (oo->block_size && oo->block_size != o.same.block_size)) {
		fprintf(stderr,
			"aioloop: %s: %s already serves this region with other settings "
			"(read-only, block size or encryption); not attached (-L)\n",
			s->backing, o.same.device);
		return 1;
	}
	printf("%s\n", o.same.device);
	return 2;
}

/* ---- attach -P: the partition table read before attach returns ---- */

/*
 * The kernel scans a ublk disk's partitions when it starts and a kernel
 * NBD disk's when it is first opened.  If no partition shows yet, ask for a
 * scan (BLKRRPART), so that DEVpN exist when attach prints the device.
 * 0 or -errno with why filled.
 */
static int partscan_now(const char *name, const char *device, char *why, size_t len)
{
	char path[PATH_MAX];
	size_t nlen = strlen(name);
	struct dirent *e;
	int ext = 0, fd, ret = 0;
	FILE *f;
	DIR *d;

	snprintf(path, sizeof(path), "/sys/block/%s/ext_range", name);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%d", &ext) != 1)
			ext = 0;
		fclose(f);
	}
	if (ext <= 1) {
		snprintf(why, len, "the disk takes no partitions%s",
			 strncmp(name, "nbd", 3) ? "" : " (the nbd module's max_part is 0)");
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "/sys/block/%s", name);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		/* ublkb0p1, nbd0p1: scanned already */
		if (!strncmp(e->d_name, name, nlen) && e->d_name[nlen] == 'p' &&
		    isdigit((unsigned char)e->d_name[nlen + 1])) {
			closedir(d);
			return 0;
		}
	}
	if (d)
		closedir(d);
	fd = open(device, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, BLKRRPART) < 0) {
		ret = -errno;
		snprintf(why, len, "BLKRRPART: %s", strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	return ret;
}

static int detach_one(const char *name, bool force);

/* ---- attach ---- */

static void attach_usage(FILE *f)
{
	fprintf(f,
		"Usage: aioloop attach [OPTIONS] FILE\n"
		"       aioloop attach --recover DEVICE [--key-file FILE]\n"
		"Attach FILE as a kernel block device served by a daemon (ublk, or the\n"
		"kernel NBD client) and print the device's path.\n\n"
		"  --ublk | --nbd         frontend (default: ublk if /dev/ublk-control exists,\n"
		"                         else the kernel NBD client)\n"
		"  -r, --read-only        read-only device\n"
		"  -P, --partscan         scan the partition table (DEVpN) before returning\n"
		"      --no-partscan      ublk: the kernel does not scan it (Linux 7.0+)\n"
		"  -L, --nooverlap        refuse a region of FILE that overlaps an attached\n"
		"                         device's; print the device that serves the very\n"
		"                         same region (and settings) instead of a new one\n"
		"  -o, --offset N         start N bytes into FILE\n"
		"      --sizelimit N      expose at most N bytes\n"
		"  -b, --block-size N     logical block size, 512 or 4096\n"
		"      --direct auto|on|off  O_DIRECT on the backing (default auto)\n"
		"      --engine E         uring, aio, threads or sync (default uring)\n"
		"      --queues N         ublk hardware queues / NBD connections (default 1)\n"
		"      --depth N          requests in flight per queue (default 64)\n"
		"      --data-path P      ublk: auto (default: the best the kernel allows),\n"
		"                         zero-copy (zero-copy-auto or -reg), zero-copy-auto,\n"
		"                         zero-copy-reg, user-copy or copy\n"
		"      --poll USEC        ublk: a queue thread polls this long before it\n"
		"                         sleeps (default 500, 0: never)\n"
		"      --recovery R       when no daemon runs: reissue (default: I/O waits;\n"
		"                         kernel NBD: up to an hour), fail-io (I/O fails)\n"
		"                         or none (ublk: the device goes with its daemon)\n"
		"      --timeout SEC      kernel NBD: a request unanswered this long is sent\n"
		"                         again (default 30 with --recovery reissue, else\n"
		"                         0: never)\n"
		"      --recover DEVICE   serve a device whose daemon died (ublk, or kernel\n"
		"                         NBD: reconnect it)\n"
		"      --show             accepted for losetup's sake: the device is always\n"
		"                         printed\n"
		"  -f, --foreground       stay in the foreground (for debugging, and systemd)\n"
		"      --control PATH     control socket for 'aioloop stats' (default\n"
		"                         " CLI_RUN_DIR "/DEV.ctl; 'none': no socket)\n"
		"      --metrics ADDR     Prometheus metrics at http://ADDR/metrics (a loopback\n"
		"                         HOST:PORT, or unix:PATH)\n"
		"      --config FILE      options from FILE, one 'key = value' a line\n"
		"  -v, --verbose          debug messages\n"
		"Encryption (dm-crypt plain format; --recover takes only "
		"--key-file):\n" CLI_CRYPT_USAGE);
}

static bool nbd_usable(char *why, size_t len)
{
	return nbd_attach_unavailable(why, len) == NULL;
}

const struct option attach_longopts[] = {{"ublk", no_argument, NULL, 'U'},
					 {"nbd", no_argument, NULL, 'N'},
					 {"read-only", no_argument, NULL, 'r'},
					 {"offset", required_argument, NULL, 'o'},
					 {"sizelimit", required_argument, NULL, 'S'},
					 {"block-size", required_argument, NULL, 'b'},
					 {"direct", required_argument, NULL, 'D'},
					 {"engine", required_argument, NULL, 'E'},
					 {"queues", required_argument, NULL, 'Q'},
					 {"depth", required_argument, NULL, 'd'},
					 {"recover", required_argument, NULL, 'R'},
					 {"data-path", required_argument, NULL, 'A'},
					 {"partscan", no_argument, NULL, 'P'},
					 {"no-partscan", no_argument, NULL, 'p'},
					 {"nooverlap", no_argument, NULL, 'L'},
					 {"poll", required_argument, NULL, 'W'},
					 {"recovery", required_argument, NULL, 'Y'},
					 {"timeout", required_argument, NULL, 'T'},
					 {"show", no_argument, NULL, 'w'},
					 {"foreground", no_argument, NULL, 'f'},
					 {"control", required_argument, NULL, 'C'},
					 {"metrics", required_argument, NULL, 'M'},
					 {"verbose", no_argument, NULL, 'v'},
					 {"help", no_argument, NULL, 'h'},
					 CLI_CRYPT_LONGOPTS,
					 {0}};

int attach_parse_args(int argc, char **argv, struct attach_config *cfg, struct cli_err *err)
{
	int c;

	memset(cfg, 0, sizeof(*cfg));
	cfg->fe = ATTACH_AUTO;
	cfg->queues = 1;
	cfg->depth = 64;
	cfg->nbd_timeout = -1;
	cfg->partscan = -1;
	snprintf(cfg->direct_opt, sizeof(cfg->direct_opt), "auto");
	err->msg[0] = '\0';
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":ro:b:PLfvh", attach_longopts, NULL)) != -1) {
		switch (c) {
		case 'U':
			cfg->fe = ATTACH_UBLK;
			break;
		case 'N':
			cfg->fe = ATTACH_NBD;
			break;
		case 'r':
			cfg->open.read_only = true;
			break;
		case 'o':
			if (cli_parse_size("--offset", optarg, 0, INT64_MAX, &cfg->open.offset,
					   err) < 0)
				return -EINVAL;
			break;
		case 'S':
			if (cli_parse_size("--sizelimit", optarg, 0, INT64_MAX,
					   &cfg->open.sizelimit, err) < 0)
				return -EINVAL;
			break;
		case 'b':
			if (cli_parse_block_size("--block-size", optarg, &cfg->open.block_size,
						 err) < 0)
				return -EINVAL;
			break;
		case 'D':
			if (cli_parse_direct(optarg, &cfg->open.direct) < 0) {
				snprintf(err->msg, sizeof(err->msg),
					 "--direct '%s': unknown (auto, on or off)", optarg);
				return -EINVAL;
			}
			snprintf(cfg->direct_opt, sizeof(cfg->direct_opt), "%s", optarg);
			break;
		case 'E':
			if (aiol_engine_parse(optarg, &cfg->open.engine) < 0) {
				snprintf(err->msg, sizeof(err->msg),
					 "--engine '%s': unknown (uring, aio, threads or sync)",
					 optarg);
				return -EINVAL;
			}
			break;
		case 'Q':
			if (cli_parse_uint32("--queues", optarg, 1, ATTACH_MAX_QUEUES, &cfg->queues,
					     err) < 0)
				return -EINVAL;
			break;
		case 'd':
			if (cli_parse_uint32("--depth", optarg, 2, ATTACH_MAX_DEPTH, &cfg->depth,
					     err) < 0)
				return -EINVAL;
			break;
		case 'R':
			cfg->recover = optarg;
			break;
		case 'P':
			cfg->partscan = 1;
			break;
		case 'p':
			cfg->partscan = 0;
			break;
		case 'L':
			cfg->nooverlap = true;
			break;
		case 'A': {
			enum ublk_data_path dp;

			if (ublk_data_path_parse(optarg, &dp) < 0) {
				snprintf(
				    err->msg, sizeof(err->msg),
				    "--data-path '%s': unknown (auto, zero-copy, zero-copy-auto, "
				    "zero-copy-reg, user-copy or copy)",
				    optarg);
				return -EINVAL;
			}
			cfg->data_path = (int)dp;
			break;
		}
		case 'w':
			break; /* losetup --show: attach always prints the device */
		case 'Y':
			if (!strcmp(optarg, "reissue")) {
				cfg->recovery = UBLK_REC_REISSUE;
			} else if (!strcmp(optarg, "fail-io")) {
				cfg->recovery = UBLK_REC_FAIL_IO;
			} else if (!strcmp(optarg, "none")) {
				cfg->recovery = UBLK_REC_NONE;
			} else {
				snprintf(err->msg, sizeof(err->msg),
					 "--recovery '%s': unknown (reissue, fail-io or none)",
					 optarg);
				return -EINVAL;
			}
			break;
		case 'T': {
			uint64_t v;

			if (cli_parse_uint("--timeout", optarg, 0, NBD_MAX_TIMEOUT_S, &v, err) < 0)
				return -EINVAL;
			cfg->nbd_timeout = (int)v;
			break;
		}
		case 'W': {
			uint64_t v;

			if (cli_parse_uint("--poll", optarg, 0, 1000000, &v, err) < 0)
				return -EINVAL;
			cfg->poll_us = v ? (int)v : -1;
			break;
		}
		case 'f':
			cfg->foreground = true;
			break;
		case 'C':
			cfg->control = optarg;
			break;
		case 'M':
			if (cli_metrics_parse(optarg, &cfg->metrics, err) < 0)
				return -EINVAL;
			cfg->metrics_on = true;
			break;
		case 'v':
			cfg->verbose = true;
			break;
		case CLI_OPT_ENCRYPT ... CLI_OPT_CRYPT_LAST:
			if (cli_crypt_opt(&cfg->crypt, c, optarg, err) < 0)
				return -EINVAL;
			break;
		case 'h':
			return CLI_HELP;
		case ':':
			snprintf(err->msg, sizeof(err->msg), "option '%s' needs a value",
				 argv[optind - 1]);
			return -EINVAL;
		default:
			if (optopt && optopt < 256)
				snprintf(err->msg, sizeof(err->msg), "unknown option '-%c'",
					 optopt);
			else
				snprintf(err->msg, sizeof(err->msg), "unknown option '%s'",
					 argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (cfg->recover && (cfg->partscan >= 0 || cfg->nooverlap)) {
		snprintf(err->msg, sizeof(err->msg),
			 "--recover keeps the device as it is: no -P, --no-partscan or -L");
		return -EINVAL;
	}
	if (cfg->recover && cfg->crypt.cipher) {
		snprintf(
		    err->msg, sizeof(err->msg),
		    "--recover takes the cipher from the device's state: give --key-file only");
		return -EINVAL;
	}
	if (!cfg->recover && cli_crypt_finish(&cfg->crypt, err) < 0)
		return -EINVAL;
	if (cfg->recover ? optind != argc : optind != argc - 1) {
		snprintf(err->msg, sizeof(err->msg),
			 cfg->recover ? "--recover DEVICE takes no FILE" : "one FILE expected");
		return -EINVAL;
	}
	if (!cfg->recover)
		cfg->file = argv[optind];
	return CLI_RUN;
}

int cmd_attach(int argc, char **argv)
{
	struct attach_config cfg;
	struct cli_err err;
	static struct cli_argv av;
	struct attach_ctx ctx = {.pipe_fd = -1};
	struct att_state *s = &ctx.st;
	struct aiol_open_opts oo;
	struct aiol_crypt_opts copts;
	struct aiol_crypt_key *key = NULL;
	enum attach_frontend fe;
	const char *recover;
	char why_u[256], why_n[256], buf[PATH_MAX + 16];
	int ret, pfd[2], status;
	pid_t pid;
	ssize_t n;
	size_t got = 0;

	/* av lives as long as the process: cfg points into it. */
	ret = cli_config_expand(argc, argv, attach_longopts, &av, &err);
	if (ret == 0)
		ret = attach_parse_args(av.argc, av.argv, &cfg, &err);
	if (ret < 0) {
		fprintf(stderr, "aioloop attach: %s (see 'aioloop attach --help')\n", err.msg);
		return EXIT_USAGE;
	}
	if (ret == CLI_HELP) {
		attach_usage(stdout);
		return 0;
	}
	if (cfg.verbose)
		cli_log_setup(AIOL_LOG_DEBUG);
	oo = cfg.open;
	fe = cfg.fe;
	recover = cfg.recover;
	s->queues = cfg.queues;
	s->depth = cfg.depth;
	ctx.control = cfg.control;
	ctx.metrics_addr = cfg.metrics_on ? &cfg.metrics : NULL;
	ctx.data_path = (enum ublk_data_path)cfg.data_path;
	ctx.recovery = (enum ublk_recovery)cfg.recovery;
	ctx.poll_us = cfg.poll_us;
	snprintf(s->direct_opt, sizeof(s->direct_opt), "%s", cfg.direct_opt);

	if (recover) {
		if (state_read(dev_name(recover), s) < 0) {
			fprintf(stderr,
				"aioloop: %s: not attached by aioloop (no state in " STATE_DIR
				")\n",
				recover);
			return 1;
		}
		if (pid_alive(s->pid)) {
			fprintf(stderr, "aioloop: %s: its daemon (pid %d) is still running\n",
				recover, (int)s->pid);
			return 1;
		}
		oo.offset = s->offset;
		oo.sizelimit = s->sizelimit;
		oo.read_only = s->ro;
		oo.block_size = s->block_size;
		cli_parse_direct(s->direct_opt[0] ? s->direct_opt : "auto", &oo.direct);
		if (aiol_engine_parse(s->engine, &oo.engine) < 0)
			oo.engine = AIOL_ENGINE_URING;
		fe = strcmp(s->type, "nbd") ? ATTACH_UBLK : ATTACH_NBD;
		if (s->encrypt[0] && !cfg.crypt.key_file) {
			fprintf(stderr, "aioloop: %s: encrypted with %s: --key-file is needed\n",
				recover, s->encrypt);
			return 1;
		}
		if (s->encrypt[0]) {
			cfg.crypt.cipher = s->encrypt;
			cfg.crypt.geom = (struct aiol_crypt_geom){.sector_size = s->enc_sector,
								  .iv_large_sectors = s->iv_large,
								  .iv_offset = s->iv_offset};
			cfg.crypt.allow_discards = s->allow_discards;
			if (aiol_crypt_spec_parse(s->encrypt, &cfg.crypt.spec) < 0 ||
			    cli_crypt_finish(&cfg.crypt, &err) < 0) {
				fprintf(stderr, "aioloop: %s: bad encryption in its state\n",
					recover);
				return 1;
			}
		} else if (cfg.crypt.key_file) {
			fprintf(stderr, "aioloop: %s: not encrypted, --key-file is wrong\n",
				recover);
			return 1;
		}
	} else {
		if (aiol_rbd_name(cfg.file)) {
			/* An RBD image: its name, as given, is its address. */
			if (strlen(cfg.file) >= sizeof(s->backing) || strchr(cfg.file, '\n')) {
				fprintf(stderr, "aioloop: %s: name too long or not one line\n",
					cfg.file);
				return 1;
			}
			snprintf(s->backing, sizeof(s->backing), "%s", cfg.file);
		} else if (!realpath(cfg.file, s->backing)) {
			fprintf(stderr, "aioloop: %s: %s\n", cfg.file, strerror(errno));
			return 1;
		}
		s->offset = oo.offset;
		s->sizelimit = oo.sizelimit;
		if (cfg.crypt.cipher) {
			snprintf(s->encrypt, sizeof(s->encrypt), "%s", cfg.crypt.spec.name);
			s->enc_sector = cfg.crypt.geom.sector_size;
			s->iv_large = cfg.crypt.geom.iv_large_sectors;
			s->iv_offset = cfg.crypt.geom.iv_offset;
			s->allow_discards = cfg.crypt.allow_discards;
		}
	}

	if (fe == ATTACH_AUTO) {
		if (!ublk_unavailable(why_u, sizeof(why_u)))
			fe = ATTACH_UBLK;
		else if (nbd_usable(why_n, sizeof(why_n)))
			fe = ATTACH_NBD;
		else {
			fprintf(stderr, "aioloop: cannot attach: ublk: %s; kernel NBD client: %s\n",
				why_u, why_n);
			return 1;
		}
	} else if (fe == ATTACH_UBLK && ublk_unavailable(why_u, sizeof(why_u))) {
		fprintf(stderr, "aioloop: cannot attach with ublk: %s\n", why_u);
		return 1;
	} else if (fe == ATTACH_NBD && !nbd_usable(why_n, sizeof(why_n))) {
		fprintf(stderr, "aioloop: cannot attach with the kernel NBD client: %s\n", why_n);
		return 1;
	}
	if (fe == ATTACH_NBD && (ctx.data_path != UBLK_DP_AUTO || cfg.recovery == UBLK_REC_NONE)) {
		fprintf(stderr, "aioloop: --data-path and --recovery none are for ublk devices\n");
		return EXIT_USAGE;
	}
	if (fe == ATTACH_NBD && cfg.partscan == 0) {
		fprintf(stderr, "aioloop: --no-partscan is for ublk devices (the kernel NBD client "
				"scans partitions as the nbd module's max_part says)\n");
		return EXIT_USAGE;
	}
	if (fe == ATTACH_UBLK && cfg.nbd_timeout >= 0) {
		fprintf(stderr, "aioloop: --timeout is for kernel NBD devices\n");
		return EXIT_USAGE;
	}
	if (fe == ATTACH_NBD && !recover) {
		/* reissue: I/O waits for a new daemon, and requests a dead one
		 * did not answer are sent again after the timeout. */
		bool wait = cfg.recovery == UBLK_REC_REISSUE;

		s->nbd_dead_conn = wait ? NBD_DEAD_CONN_TIMEOUT_S : 0;
		s->nbd_timeout = cfg.nbd_timeout >= 0 ? (unsigned int)cfg.nbd_timeout
				 : wait		      ? NBD_DEFAULT_TIMEOUT_S
						      : 0;
	}
	snprintf(s->type, sizeof(s->type), "%s", fe == ATTACH_UBLK ? "ublk" : "nbd");
	if (!recover)
		s->partscan = cfg.partscan;
	if (cfg.nooverlap) {
		ret = check_overlap(s, &oo);
		if (ret)
			return ret == 2 ? 0 : 1;
	}

	/* The key, read here (standard input is the caller's); the daemon's
	 * stage keeps its own locked copy. */
	if (cli_crypt_load(&cfg.crypt, &copts, &key) < 0)
		return 1;
	oo.crypt = key ? &copts : NULL;
	if (cfg.foreground) {
		ret = daemon_main(&ctx, &oo, recover != NULL);
		aiol_crypt_key_free(key);
		return ret;
	}

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		perror("aioloop: pipe");
		return 1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("aioloop: fork");
		return 1;
	}
	if (pid == 0) {
		close(pfd[0]);
		ctx.pipe_fd = pfd[1];
		setsid();
		/* A grandchild, so that the daemon is no child of the caller's shell. */
		pid = fork();
		if (pid < 0)
			_exit(1);
		if (pid > 0) {
			aiol_crypt_key_free(key);
			_exit(0);
		}
		ret = daemon_main(&ctx, &oo, recover != NULL);
		aiol_crypt_key_free(key);
		_exit(ret);
	}
	aiol_crypt_key_free(key);
	close(pfd[1]);
	waitpid(pid, &status, 0);
	while (got < sizeof(buf) - 1) {
		n = read(pfd[0], buf + got, sizeof(buf) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(pfd[0]);
	buf[got] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (strncmp(buf, "OK ", 3)) {
		fprintf(stderr, "aioloop: attach %s failed%s%s\n", recover ? recover : s->backing,
			got > 4 ? ": " : " (the daemon died)", got > 4 ? buf + 4 : "");
		return 1;
	}
	/* The device node appears through udev/devtmpfs: wait for it. */
	for (int i = 0; i < 100; i++) {
		struct stat sb;

		if (stat(buf + 3, &sb) == 0 && S_ISBLK(sb.st_mode))
			break;
		usleep(50000);
	}
	if (cfg.partscan == 1) {
		char why[160];

		ret = partscan_now(dev_name(buf + 3), buf + 3, why, sizeof(why));
		if (ret < 0) {
			fprintf(stderr, "aioloop: %s: -P: %s; detaching it\n", buf + 3, why);
			detach_one(dev_name(buf + 3), true);
			return 1;
		}
	}
	printf("%s\n", buf + 3);
	return 0;
}

/* ---- detach ---- */

/*
 * Whether a device is in use: mounted or held open exclusively (an O_EXCL
 * open fails with EBUSY), or with holders stacked on it (dm, md).  A plain
 * open by a program is not seen.  why says which.
 */
static bool dev_in_use(const struct att_state *s, char *why, size_t len)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int fd;

	fd = open(s->device, O_RDONLY | O_EXCL | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == EBUSY) {
		snprintf(why, len, "mounted or held open exclusively");
		return true;
	}
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "/sys/block/%s/holders", s->name);
	d = opendir(path);
	if (!d)
		return false;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(why, len, "in use by %s", e->d_name);
		closedir(d);
		return true;
	}
	closedir(d);
	return false;
}

/* Whether MAJ:MIN is mounted (a field of /proc/self/mountinfo). */
static bool majmin_mounted(const char *majmin)
{
	char line[4096], mm[32];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	while (f && !found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%*s %*s %31s", mm) == 1 && !strcmp(mm, majmin);
	if (f)
		fclose(f);
	return found;
}

/* Whether /sys/block/NAME[/PART] (dir) is mounted or held. */
static bool sysfs_in_use(const char *dir, char *why, size_t len)
{
	char path[PATH_MAX], mm[32] = "";
	struct dirent *e;
	FILE *f;
	DIR *d;

	snprintf(path, sizeof(path), "%s/dev", dir);
	f = fopen(path, "re");
	if (f) {
		if (!fgets(mm, sizeof(mm), f))
			mm[0] = '\0';
		fclose(f);
		mm[strcspn(mm, "\n")] = '\0';
	}
	if (mm[0] && majmin_mounted(mm)) {
		snprintf(why, len, "mounted");
		return true;
	}
	snprintf(path, sizeof(path), "%s/holders", dir);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] != '.') {
			snprintf(why, len, "in use by %s", e->d_name);
			closedir(d);
			return true;
		}
	}
	if (d)
		closedir(d);
	return false;
}

/*
 * dev_in_use() for a kernel NBD device whose daemon died, without opening
 * it: the first open reads the partition table, and that I/O waits for a
 * daemon (dead_conn_timeout).  Mounts and holders of the disk and its
 * partitions, from sysfs and mountinfo.
 */
static bool dead_nbd_in_use(const struct att_state *s, char *why, size_t len)
{
	char dir[128], part[PATH_MAX];
	size_t nlen = strlen(s->name);
	struct dirent *e;
	bool used;
	DIR *d;

	snprintf(dir, sizeof(dir), "/sys/block/%s", s->name);
	if (sysfs_in_use(dir, why, len))
		return true;
	d = opendir(dir);
	used = false;
	while (d && !used && (e = readdir(d))) {
		if (strncmp(e->d_name, s->name, nlen) || e->d_name[nlen] != 'p')
			continue;
		snprintf(part, sizeof(part), "%s/%s", dir, e->d_name);
		used = sysfs_in_use(part, why, len);
	}
	if (d)
		closedir(d);
	return used;
}

static int detach_one(const char *name, bool force)
{
	struct att_state s;
	char why[300];
	int i;

	if (state_read(name, &s) < 0) {
		fprintf(stderr, "aioloop: %s: not attached by aioloop\n", name);
		return 1;
	}
	if (!force &&
	    (strcmp(s.type, "nbd") || pid_alive(s.pid) ? dev_in_use(&s, why, sizeof(why))
						       : dead_nbd_in_use(&s, why, sizeof(why)))) {
		fprintf(stderr, "aioloop: %s: %s; not detached (--force detaches anyway)\n",
			s.device, why);
		return 1;
	}
	if (pid_alive(s.pid)) {
		if (kill(s.pid, SIGTERM) < 0 && errno != ESRCH) {
			fprintf(stderr, "aioloop: %s: signal daemon %d: %s\n", name, (int)s.pid,
				strerror(errno));
			return 1;
		}
		for (i = 0; i < DETACH_WAIT_S * 10 && pid_alive(s.pid); i++)
			usleep(100000);
		if (pid_alive(s.pid)) {
			fprintf(stderr, "aioloop: %s: daemon %d still running after %d s\n", name,
				(int)s.pid, DETACH_WAIT_S);
			return 1;
		}
	} else if (!strcmp(s.type, "ublk")) {
		/* The daemon died (recoverable device left quiesced): remove it. */
		int ret = ublk_dev_remove((uint32_t)s.dev_id);

		if (ret < 0 && ret != -ENODEV) {
			fprintf(stderr, "aioloop: %s: removing the ublk device: %s\n", name,
				strerror(-ret));
			return 1;
		}
		log_remove(name);
	} else {
		nbd_attach_disconnect(s.dev_id);
		log_remove(name);
	}
	state_remove(name);
	return 0;
}

static int detach_cb(const char *name, void *arg)
{
	return detach_one(name, *(bool *)arg);
}

int cmd_detach(int argc, char **argv)
{
	bool force = false, all = false;
	int ret = 0, ndev = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf(
			    "Usage: aioloop detach [--force] DEVICE...\n"
			    "       aioloop detach [--force] -a\n"
			    "Flush, stop and remove devices attached by aioloop.  A device that\n"
			    "is mounted or in use is left alone unless --force.\n");
			return 0;
		}
		if (!strcmp(argv[i], "--force"))
			force = true;
		else if (!strcmp(argv[i], "-a") || !strcmp(argv[i], "--all"))
			all = true;
		else
			ndev++;
	}
	if (all == (ndev > 0)) {
		fprintf(stderr, "Usage: aioloop detach [--force] DEVICE... | -a\n");
		return EXIT_USAGE;
	}
	if (all)
		return for_each_state(detach_cb, &force);
	for (int i = 1; i < argc; i++)
		if (argv[i][0] != '-')
			ret |= detach_one(dev_name(argv[i]), force);
	return ret;
}
