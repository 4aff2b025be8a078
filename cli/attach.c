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
 * stopped and deleted directly.  list reads the state files.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "cli.h"
#include "daemon.h"
#include "nbd-attach.h"
#include "ublk.h"

_Static_assert(ATTACH_MAX_DEPTH == UBLK_MAX_QUEUE_DEPTH, "--depth's bound is ublk's");

#define STATE_DIR "/run/aioloop"
#define DETACH_WAIT_S 60

/* One attached device, as kept in STATE_DIR/NAME. */
struct att_state {
	char name[64];	 /* ublkb0, nbd3 */
	char device[80]; /* /dev/ublkb0 */
	char type[8];	 /* ublk | nbd */
	int dev_id;	 /* ublk device id / nbd index */
	char backing[PATH_MAX];
	uint64_t offset, sizelimit, size;
	unsigned int block_size, queues, depth;
	bool ro, direct;
	char direct_opt[8]; /* auto | on | off, as asked */
	char engine[16];
	pid_t pid;
};

struct attach_ctx {
	struct att_state st;
	int pipe_fd; /* daemon -> CLI */
};

/* ---- state files ---- */

static void state_path(const char *name, const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, STATE_DIR "/%s%s", name, suffix);
}

static int state_write(const struct att_state *s)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	FILE *f;

	if (mkdir(STATE_DIR, 0755) < 0 && errno != EEXIST) {
		aiol_err("mkdir " STATE_DIR ": %m");
		return -errno;
	}
	state_path(s->name, "", path, sizeof(path));
	state_path(s->name, ".tmp", tmp, sizeof(tmp));
	f = fopen(tmp, "we");
	if (!f) {
		aiol_err("%s: %m", tmp);
		return -errno;
	}
	fprintf(f,
		"device=%s\ntype=%s\ndev_id=%d\nbacking=%s\noffset=%" PRIu64 "\nsizelimit=%" PRIu64
		"\nsize=%" PRIu64 "\nblock_size=%u\nro=%d\ndirect=%d\n"
		"direct_opt=%s\nengine=%s\nqueues=%u\ndepth=%u\npid=%d\n",
		s->device, s->type, s->dev_id, s->backing, s->offset, s->sizelimit, s->size,
		s->block_size, s->ro, s->direct, s->direct_opt, s->engine, s->queues, s->depth,
		(int)s->pid);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		aiol_err("%s: %m", path);
		unlink(tmp);
		return -errno;
	}
	return 0;
}

static int state_read(const char *name, struct att_state *s)
{
	char path[PATH_MAX], line[PATH_MAX + 32];
	FILE *f;

	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	state_path(name, "", path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *v = strchr(line, '=');

		if (!v)
			continue;
		*v++ = '\0';
		v[strcspn(v, "\n")] = '\0';
		if (!strcmp(line, "device"))
			snprintf(s->device, sizeof(s->device), "%s", v);
		else if (!strcmp(line, "type"))
			snprintf(s->type, sizeof(s->type), "%s", v);
		else if (!strcmp(line, "dev_id"))
			s->dev_id = atoi(v);
		else if (!strcmp(line, "backing"))
			snprintf(s->backing, sizeof(s->backing), "%s", v);
		else if (!strcmp(line, "offset"))
			s->offset = strtoull(v, NULL, 10);
		else if (!strcmp(line, "sizelimit"))
			s->sizelimit = strtoull(v, NULL, 10);
		else if (!strcmp(line, "size"))
			s->size = strtoull(v, NULL, 10);
		else if (!strcmp(line, "block_size"))
			s->block_size = (unsigned int)atoi(v);
		else if (!strcmp(line, "ro"))
			s->ro = atoi(v) != 0;
		else if (!strcmp(line, "direct"))
			s->direct = atoi(v) != 0;
		else if (!strcmp(line, "direct_opt"))
			snprintf(s->direct_opt, sizeof(s->direct_opt), "%s", v);
		else if (!strcmp(line, "engine"))
			snprintf(s->engine, sizeof(s->engine), "%s", v);
		else if (!strcmp(line, "queues"))
			s->queues = (unsigned int)atoi(v);
		else if (!strcmp(line, "depth"))
			s->depth = (unsigned int)atoi(v);
		else if (!strcmp(line, "pid"))
			s->pid = (pid_t)atoi(v);
	}
	fclose(f);
	return s->device[0] ? 0 : -EINVAL;
}

static void state_remove(const char *name)
{
	char path[PATH_MAX];

	state_path(name, "", path, sizeof(path));
	unlink(path);
}

/* A device gone for good (detached, or its daemon ended cleanly): its log
 * goes with it. */
static void log_remove(const char *name)
{
	char path[PATH_MAX];

	state_path(name, ".log", path, sizeof(path));
	unlink(path);
}

/* "/dev/ublkb0", "ublkb0" -> "ublkb0" */
static const char *dev_name(const char *arg)
{
	const char *p = strrchr(arg, '/');

	return p ? p + 1 : arg;
}

/* Whether pid is alive (a zombie counts as gone). */
static bool pid_alive(pid_t pid)
{
	char path[64], buf[256], *p;
	FILE *f;
	bool alive = true;

	if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1] == ' ' && p[2] == 'Z')
		alive = false;
	fclose(f);
	return alive;
}

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
		err = state_write(s);
	}
	if (err == 0) {
		/* From now on the daemon is on its own: log to a file. */
		state_path(s->name, ".log", log, sizeof(log));
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
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

static int daemon_main(struct attach_ctx *ctx, const struct aiol_open_opts *oo, bool recover)
{
	struct att_state *s = &ctx->st;
	sigset_t set;
	int ret, fd;

	attach_daemon_sigset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
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
		    .ready = dev_ready,
		    .arg = ctx,
		};

		ret = ublk_dev_run(&uo);
	} else {
		struct nbd_attach_opts no = {
		    .path = s->backing,
		    .open = *oo,
		    .nr_conns = s->queues,
		    .ready = dev_ready,
		    .arg = ctx,
		};

		ret = nbd_attach_run(&no);
	}
	if (ctx->pipe_fd < 0 && s->name[0]) {
		state_remove(s->name);
		if (ret == 0)
			log_remove(s->name);
	}
	return ret < 0 ? 1 : 0;
}

/* ---- attach ---- */

static void attach_usage(FILE *f)
{
	fprintf(f, "Usage: aioloop attach [OPTIONS] FILE\n"
		   "       aioloop attach --recover DEVICE\n"
		   "Attach FILE as a kernel block device served by a daemon (ublk, or the\n"
		   "kernel NBD client) and print the device's path.\n\n"
		   "  --ublk | --nbd         frontend (default: ublk if /dev/ublk-control exists,\n"
		   "                         else the kernel NBD client)\n"
		   "  -r, --read-only        read-only device\n"
		   "  -o, --offset N         start N bytes into FILE\n"
		   "      --sizelimit N      expose at most N bytes\n"
		   "  -b, --block-size N     logical block size, 512 or 4096\n"
		   "      --direct auto|on|off  O_DIRECT on the backing (default auto)\n"
		   "      --engine E         uring, aio, threads or sync (default uring)\n"
		   "      --queues N         ublk hardware queues / NBD connections (default 1)\n"
		   "      --depth N          requests in flight per queue (default 64)\n"
		   "      --recover DEVICE   serve a ublk device whose daemon died\n"
		   "  -f, --foreground       stay in the foreground (for debugging)\n"
		   "  -v, --verbose          debug messages\n");
}

static bool nbd_usable(char *why, size_t len)
{
	return nbd_attach_unavailable(why, len) == NULL;
}

int attach_parse_args(int argc, char **argv, struct attach_config *cfg, struct cli_err *err)
{
	static const struct option lopts[] = {{"ublk", no_argument, NULL, 'U'},
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
					      {"foreground", no_argument, NULL, 'f'},
					      {"verbose", no_argument, NULL, 'v'},
					      {"help", no_argument, NULL, 'h'},
					      {0}};
	int c;

	memset(cfg, 0, sizeof(*cfg));
	cfg->fe = ATTACH_AUTO;
	cfg->queues = 1;
	cfg->depth = 64;
	snprintf(cfg->direct_opt, sizeof(cfg->direct_opt), "auto");
	err->msg[0] = '\0';
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":ro:b:fvh", lopts, NULL)) != -1) {
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
		case 'f':
			cfg->foreground = true;
			break;
		case 'v':
			cfg->verbose = true;
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
	struct attach_ctx ctx = {.pipe_fd = -1};
	struct att_state *s = &ctx.st;
	struct aiol_open_opts oo;
	enum attach_frontend fe;
	const char *recover;
	char why_u[256], why_n[256], buf[PATH_MAX + 16];
	int ret, pfd[2], status;
	pid_t pid;
	ssize_t n;
	size_t got = 0;

	ret = attach_parse_args(argc, argv, &cfg, &err);
	if (ret < 0) {
		fprintf(stderr, "aioloop attach: %s (see 'aioloop attach --help')\n", err.msg);
		return EXIT_USAGE;
	}
	if (ret == CLI_HELP) {
		attach_usage(stdout);
		return 0;
	}
	if (cfg.verbose)
		aiol_log_setup("aioloop", AIOL_LOG_DEBUG, NULL);
	oo = cfg.open;
	fe = cfg.fe;
	recover = cfg.recover;
	s->queues = cfg.queues;
	s->depth = cfg.depth;
	snprintf(s->direct_opt, sizeof(s->direct_opt), "%s", cfg.direct_opt);

	if (recover) {
		if (state_read(dev_name(recover), s) < 0) {
			fprintf(stderr,
				"aioloop: %s: not attached by aioloop (no state in " STATE_DIR
				")\n",
				recover);
			return 1;
		}
		if (strcmp(s->type, "ublk")) {
			fprintf(stderr, "aioloop: %s: only ublk devices can be recovered\n",
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
		fe = ATTACH_UBLK;
	} else {
		if (!realpath(cfg.file, s->backing)) {
			fprintf(stderr, "aioloop: %s: %s\n", cfg.file, strerror(errno));
			return 1;
		}
		s->offset = oo.offset;
		s->sizelimit = oo.sizelimit;
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
	snprintf(s->type, sizeof(s->type), "%s", fe == ATTACH_UBLK ? "ublk" : "nbd");

	if (cfg.foreground)
		return daemon_main(&ctx, &oo, recover != NULL);

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
		if (pid > 0)
			_exit(0);
		_exit(daemon_main(&ctx, &oo, recover != NULL));
	}
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
	printf("%s\n", buf + 3);
	return 0;
}

/* ---- detach ---- */

static int detach_one(const char *name)
{
	struct att_state s;
	int i;

	if (state_read(name, &s) < 0) {
		fprintf(stderr, "aioloop: %s: not attached by aioloop\n", name);
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

static int for_each_state(int (*fn)(const char *name, void *arg), void *arg)
{
	DIR *d = opendir(STATE_DIR);
	struct dirent *e;
	int ret = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || strchr(e->d_name, '.'))
			continue;
		if (fn(e->d_name, arg))
			ret = 1;
	}
	closedir(d);
	return ret;
}

static int detach_cb(const char *name, void *arg)
{
	(void)arg;
	return detach_one(name);
}

int cmd_detach(int argc, char **argv)
{
	int ret = 0;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fprintf(argc < 2 ? stderr : stdout,
			"Usage: aioloop detach DEVICE...\n       aioloop detach -a\n"
			"Flush, stop and remove devices attached by aioloop.\n");
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (!strcmp(argv[1], "-a") || !strcmp(argv[1], "--all"))
		return for_each_state(detach_cb, NULL);
	for (int i = 1; i < argc; i++)
		ret |= detach_one(dev_name(argv[i]));
	return ret;
}

/* ---- list ---- */

struct list_ctx {
	bool json;
	int count;
};

static int list_cb(const char *name, void *arg)
{
	struct list_ctx *l = arg;
	struct att_state s;
	bool alive;

	if (state_read(name, &s) < 0)
		return 0;
	alive = pid_alive(s.pid);
	if (l->json) {
		printf("%s\n      {\"name\": ", l->count ? "," : "");
		cli_json_string(stdout, s.device);
		printf(", \"type\": \"%s\", \"back-file\": ", s.type);
		cli_json_string(stdout, s.backing);
		printf(", \"offset\": %" PRIu64 ", \"sizelimit\": %" PRIu64 ", \"size\": %" PRIu64
		       ", \"ro\": %s, \"dio\": %s, \"log-sec\": %u, \"engine\": \"%s\", \"pid\": %d"
		       ", \"running\": %s}",
		       s.offset, s.sizelimit, s.size, s.ro ? "true" : "false",
		       s.direct ? "true" : "false", s.block_size, s.engine, (int)s.pid,
		       alive ? "true" : "false");
	} else {
		printf("%-12s %-4s %10" PRIu64 " %10" PRIu64 " %2d %3d %-7s %7d%s %s\n", s.device,
		       s.type, s.offset, s.sizelimit, s.ro, s.direct, s.engine, (int)s.pid,
		       alive ? " " : "!", s.backing);
	}
	l->count++;
	return 0;
}

int cmd_list(int argc, char **argv)
{
	struct list_ctx l = {0};

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-J")) {
			l.json = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("Usage: aioloop list [--json]\n"
			       "List devices attached by aioloop (a '!' after the pid: daemon not "
			       "running).\n");
			return 0;
		} else {
			fprintf(stderr, "aioloop: list: unknown option '%s'\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (l.json)
		printf("{\n   \"aiodevices\": [");
	else
		printf("%-12s %-4s %10s %10s %2s %3s %-7s %7s  %s\n", "NAME", "TYPE", "OFFSET",
		       "SIZELIMIT", "RO", "DIO", "ENGINE", "PID", "BACK-FILE");
	for_each_state(list_cb, &l);
	if (l.json)
		printf("%s]\n}\n", l.count ? "\n   " : "");
	return 0;
}
