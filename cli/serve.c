// SPDX-License-Identifier: MIT
/*
 * aioloop serve: export files over NBD.  A thin layer over nbd/server.h
 * and nbd/listen.h: parse options (conventions of qemu-nbd and nbdkit),
 * open the backing files, create the server, listen (TCP, Unix socket,
 * systemd socket activation) or serve one client on stdin/stdout (-s),
 * and shut down gracefully on SIGINT/SIGTERM.
 *
 * Signals are blocked in every thread and read from a signalfd by the main
 * thread, which is the only one that acts on them.
 *
 * An export follows its backing's size where the store watches it (an RBD
 * image resized by another client): the store's on_resize callback, on a
 * thread of the store's, re-reads the size (aiol_dev_refresh_size), which
 * the connections that come after see; a connection keeps the size it was
 * told at its handshake, as NBD has no way to tell it another.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "cli.h"
#include "version.h"
#include "nbd/listen.h"
#include "nbd/server.h"
#include "nbd/tls.h"

#define DEMO_SIZE ((uint64_t)256 << 20)
/* Offsets and sizes end up in off_t. */
#define MAX_OFFSET ((uint64_t)INT64_MAX)
/* Fewer online CPUs than this: the workers sleep unless --poll is given. */
#define SERVE_POLL_MIN_CPUS 4

/* What an export's on_resize callback needs: its dev, once opened. */
struct serve_resize {
	struct aiol_dev *_Atomic dev;
	pthread_mutex_t mu;	/* one aiol_dev_refresh_size at a time */
};

/* on_resize (a store's thread): the export takes the backing's new size. */
static void serve_on_resize(void *arg)
{
	struct serve_resize *r = arg;
	struct aiol_dev *dev;
	uint64_t size;

	pthread_mutex_lock(&r->mu);
	dev = atomic_load(&r->dev);
	if (dev && aiol_dev_refresh_size(dev, 0, &size) == 0)
		aiol_info("%s: the export is now %" PRIu64 " bytes, for new connections",
			  aiol_dev_info(dev)->path, size);
	pthread_mutex_unlock(&r->mu);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: aioloop serve [OPTIONS] [FILE]\n"
		"Serve FILE (a regular file or block device) over NBD as the default export.\n"
		"Without FILE, a 256 MiB demo image is created and served.\n\n"
		"Where to listen (default: TCP localhost:10809):\n"
		"  -U, --socket PATH        Unix socket PATH\n"
		"  -p, --port PORT          TCP port (default 10809)\n"
		"  -b, --bind ADDR          TCP address to bind (default localhost)\n"
		"  -s, --stdio              serve one client on stdin/stdout, then exit\n"
		"      (systemd socket activation, LISTEN_PID/LISTEN_FDS, is used when present)\n\n"
		"Exports:\n"
		"  -e, --export-name NAME   name of FILE's export (\"\" still reaches it)\n"
		"  -D, --description TEXT   description of FILE's export\n"
		"  -r, --read-only          every export read-only\n"
		"      --export NAME=FILE[,ro][,offset=N][,sizelimit=N]   one more export "
		"(repeatable)\n"
		"      --offset N           FILE: start N bytes into it\n"
		"      --sizelimit N        FILE: export at most N bytes\n\n"
		"Engine:\n"
		"      --engine E           uring (default), aio, threads or sync\n"
		"      --direct[=auto|on|off]  O_DIRECT (default auto; bare --direct: on)\n"
		"      --block-size N       logical block size 512 or 4096 (default: probed)\n\n"
		"Encryption (every export, dm-crypt plain format):\n" CLI_CRYPT_USAGE "\n"
		"Server:\n"
		"  -t, --threads N          worker threads (default: one per CPU)\n"
		"      --max-connections N  refuse clients beyond N (default: unlimited)\n"
		"      --max-inflight SIZE  in-flight data cap, split across workers; each needs "
		"%zu MiB\n"
		"      --max-conn-inflight SIZE  in-flight data one connection may hold (default 128M)\n"
		"      --handshake-timeout S  drop clients still negotiating after S seconds (default 10)\n"
		"      --payload-timeout S  drop clients that take over S seconds to send a WRITE's data "
		"(default 60)\n"
		"      --poll USEC          a busy worker polls for completions at most this long "
		"before it sleeps\n"
		"                           (adaptive; default %d with 4 CPUs or more, else 0, and 0\n"
		"                           with an rbd: export; 0: sleep at once)\n"
		"      --pidfile FILE       write the process id to FILE once listening\n"
		"      --control PATH       control socket for 'aioloop stats' (default\n"
		"                           " CLI_RUN_DIR "/serve-PID.ctl; 'none': no socket)\n"
		"      --metrics ADDR       Prometheus metrics at http://ADDR/metrics; ADDR is\n"
		"                           127.0.0.1:PORT, [::1]:PORT, localhost:PORT or "
		"unix:PATH\n"
		"      --fork               run in the background once listening (default: "
		"foreground)\n"
		"  -v, --verbose            more messages (-vv: every request)\n"
		"      --config FILE        options from FILE, one 'key = value' a line (see "
		"aioloop(8));\n"
		"                           the command line's own options win\n"
		"  -h, --help               this help\n"
		"  -V, --version            version\n\n"
		"TLS (STARTTLS, GnuTLS):\n"
		"      --tls=off|on|require TLS offered (on) or required before any option (require)\n"
		"      --tls-certificates DIR  ca-cert.pem, server-cert.pem, server-key.pem (as nbdkit, "
		"qemu)\n"
		"      --tls-psk FILE       pre-shared keys in psktool's format\n"
		"      --tls-verify-peer    require a client certificate signed by DIR/ca-cert.pem\n\n"
		"Examples:\n"
		"  aioloop serve disk.img                  nbdinfo nbd://localhost\n"
		"  aioloop serve -U /tmp/s.sock -r disk.img   qemu-img info "
		"'nbd+unix:///?socket=/tmp/s.sock'\n"
		"  nbdinfo -- [ aioloop serve -s disk.img ]\n",
		NBD_WORKER_ARENA_MIN >> 20, NBD_DEFAULT_POLL_US);
}

/* NAME=FILE[,ro][,offset=N][,sizelimit=N], cut up in place.  Returns 0 or
 * -EINVAL with err filled. */
static int parse_export(char *arg, struct serve_export *e, struct cli_err *err)
{
	char *eq = strchr(arg, '='), *opt, *save = NULL;

	if (!eq) {
		snprintf(err->msg, sizeof(err->msg),
			 "--export '%s': not NAME=FILE[,ro][,offset=N]"
			 "[,sizelimit=N]",
			 arg);
		return -EINVAL;
	}
	*eq = '\0';
	e->name = arg;
	e->file = strtok_r(eq + 1, ",", &save);
	if (!e->file || !*e->file) {
		snprintf(err->msg, sizeof(err->msg), "--export %s: no FILE after '='", arg);
		return -EINVAL;
	}
	while ((opt = strtok_r(NULL, ",", &save))) {
		if (!strcmp(opt, "ro")) {
			e->ro = true;
		} else if (!strncmp(opt, "offset=", 7)) {
			if (cli_parse_size("--export offset", opt + 7, 0, MAX_OFFSET, &e->offset,
					   err) < 0)
				return -EINVAL;
		} else if (!strncmp(opt, "sizelimit=", 10)) {
			if (cli_parse_size("--export sizelimit", opt + 10, 0, MAX_OFFSET,
					   &e->sizelimit, err) < 0)
				return -EINVAL;
		} else {
			snprintf(err->msg, sizeof(err->msg),
				 "--export %s: unknown '%s' (ro, offset=N or sizelimit=N)", e->name,
				 opt);
			return -EINVAL;
		}
	}
	return 0;
}

/* Open DIR/aioloop-demo.img for the demo image.  The directories it goes
 * in are shared (/var/tmp, /tmp): whatever sits at that fixed path may have
 * been put there by another user, to make a root server truncate or serve
 * a file through a link.  So the image is created with O_EXCL|O_NOFOLLOW,
 * and an existing one is reused only if it opens without following a link
 * and is a regular file of ours with one link; anything else is refused
 * and left alone.  The directory must keep others from replacing the file
 * later (the server reopens it by name): not writable by others, or
 * sticky.  Returns an fd (*created: whether it is new), -ENOENT-like
 * errors of the directory as they are (the caller tries the next one), or
 * -EPERM with the reason logged. */
static int demo_open(const char *dir, const char *path, bool *created)
{
	struct stat st;
	int fd;

	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		aiol_err("%s: writable by others and not sticky: no demo image there", dir);
		return -EPERM;
	}
	*created = true;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd >= 0 || errno != EEXIST)
		return fd >= 0 ? fd : -errno;
	*created = false;
	fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP)
			aiol_err("%s is a symbolic link: not following it to make the demo image "
				 "(remove it, or set AIOLOOP_DEMO_DIR)",
				 path);
		else
			aiol_err("%s exists and cannot be opened: %m", path);
		return -EPERM;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    st.st_nlink != 1) {
		aiol_err("%s exists and is not a demo image of ours (a regular file of uid %u with "
			 "one link): leaving it alone (remove it, or set AIOLOOP_DEMO_DIR)",
			 path, (unsigned int)geteuid());
		close(fd);
		return -EPERM;
	}
	return fd;
}

/* Create (or reuse) the demo image in $AIOLOOP_DEMO_DIR, else /var/tmp,
 * else /tmp; returns a malloc'd path or NULL (the reason logged). */
static char *demo_image(void)
{
	const char *dirs[] = {getenv("AIOLOOP_DEMO_DIR"), "/var/tmp", "/tmp"};
	char *path = NULL;
	char block[4096];
	struct stat st;
	bool created = false;
	int fd = -ENOENT;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i] || !*dirs[i])
			continue;
		if (asprintf(&path, "%s/aioloop-demo.img", dirs[i]) < 0)
			return NULL;
		fd = demo_open(dirs[i], path, &created);
		if (fd >= 0 || fd == -EPERM)
			break;
		free(path);
		path = NULL;
	}
	if (fd == -EPERM) {
		free(path);
		return NULL;
	}
	if (fd < 0) {
		aiol_err("cannot create a demo image in /var/tmp or /tmp: %s", strerror(-fd));
		return NULL;
	}
	if (!created && fstat(fd, &st) == 0 && (uint64_t)st.st_size == DEMO_SIZE) {
		close(fd);
		return path; /* from an earlier run */
	}
	if (ftruncate(fd, 0) < 0)
		goto err;
	/* A recognisable pattern in the first 64 KiB, the rest a hole. */
	for (unsigned int b = 0; b < 16; b++) {
		size_t n = 0;

		while (n + 64 <= sizeof(block))
			n += (size_t)snprintf(
			    block + n, sizeof(block) - n,
			    "aioloop demo image, block %02u, line %03zu ----------\n", b, n / 64);
		memset(block + n, '\n', sizeof(block) - n);
		if (pwrite(fd, block, sizeof(block), (off_t)b * sizeof(block)) !=
		    (ssize_t)sizeof(block))
			goto err;
	}
	if (ftruncate(fd, (off_t)DEMO_SIZE) < 0)
		goto err;
	close(fd);
	return path;
err:
	aiol_err("cannot write the demo image %s: %m", path);
	close(fd);
	if (created)
		unlink(path);
	free(path);
	return NULL;
}

/* Fork into the background.  Returns 0 in the child (*ready_fd: write one
 * byte there once serving) or -errno; the parent never returns. */
static int fork_server(int *ready_fd)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0) {
		aiol_err("pipe: %m");
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		aiol_err("fork: %m");
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid > 0) {
		close(p[1]);
		/* Exit without cleanup: the socket and files are the child's. */
		_exit(read(p[0], &c, 1) == 1 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	*ready_fd = p[1];
	return 0;
}

static int write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
		aiol_err("cannot write the pid file %s: %m", path);
		return -errno;
	}
	return 0;
}

/* Tell systemd (Type=notify) that we serve, and what. */
static void notify_ready(const struct serve_config *cfg, struct aiol_dev *const *devs,
			 int nact, const char *sock, const char *addr, const char *port)
{
	const struct aiol_dev_info *in = aiol_dev_info(devs[0]);
	char where[PATH_MAX + 64], more[48] = "";

	if (nact > 0)
		snprintf(where, sizeof(where), "%d socket-activated listener%s", nact,
			 nact > 1 ? "s" : "");
	else if (sock)
		snprintf(where, sizeof(where), "%s", sock);
	else
		snprintf(where, sizeof(where), "%s:%s", addr ? addr : "localhost",
			 port ? port : NBD_DEFAULT_PORT);
	if (cfg->nex > 1)
		snprintf(more, sizeof(more), " and %u more export%s", cfg->nex - 1,
			 cfg->nex > 2 ? "s" : "");
	cli_notify("READY=1\nSTATUS=serving export '%s' (%s%s)%s on %s", cfg->ex[0].name,
		   in->path, in->read_only ? ", read-only" : "", more, where);
}

enum {
	OPT_EXPORT = 256,
	OPT_ENGINE,
	OPT_DIRECT,
	OPT_OFFSET,
	OPT_SIZELIMIT,
	OPT_BLOCK_SIZE,
	OPT_MAX_CONN,
	OPT_MAX_INFLIGHT,
	OPT_PIDFILE,
	OPT_FORK,
	OPT_TLS,
	OPT_TLS_CERTS,
	OPT_TLS_PSK,
	OPT_TLS_VERIFY,
	OPT_HS_TIMEOUT,
	OPT_MAX_CONN_INFLIGHT,
	OPT_PAYLOAD_TIMEOUT,
	OPT_POLL,
	OPT_CONTROL,
	OPT_METRICS,
};

const struct option serve_longopts[] = {
    {"socket", required_argument, NULL, 'U'},
    {"port", required_argument, NULL, 'p'},
    {"bind", required_argument, NULL, 'b'},
    {"stdio", no_argument, NULL, 's'},
    {"read-only", no_argument, NULL, 'r'},
    {"export-name", required_argument, NULL, 'e'},
    {"description", required_argument, NULL, 'D'},
    {"export", required_argument, NULL, OPT_EXPORT},
    {"engine", required_argument, NULL, OPT_ENGINE},
    {"direct", optional_argument, NULL, OPT_DIRECT},
    {"offset", required_argument, NULL, OPT_OFFSET},
    {"sizelimit", required_argument, NULL, OPT_SIZELIMIT},
    {"block-size", required_argument, NULL, OPT_BLOCK_SIZE},
    {"threads", required_argument, NULL, 't'},
    {"max-connections", required_argument, NULL, OPT_MAX_CONN},
    {"max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT},
    {"pidfile", required_argument, NULL, OPT_PIDFILE},
    {"fork", no_argument, NULL, OPT_FORK},
    {"tls", required_argument, NULL, OPT_TLS},
    {"tls-certificates", required_argument, NULL, OPT_TLS_CERTS},
    {"tls-psk", required_argument, NULL, OPT_TLS_PSK},
    {"tls-verify-peer", no_argument, NULL, OPT_TLS_VERIFY},
    {"handshake-timeout", required_argument, NULL, OPT_HS_TIMEOUT},
    {"max-conn-inflight", required_argument, NULL, OPT_MAX_CONN_INFLIGHT},
    {"payload-timeout", required_argument, NULL, OPT_PAYLOAD_TIMEOUT},
    {"poll", required_argument, NULL, OPT_POLL},
    {"control", required_argument, NULL, OPT_CONTROL},
    {"metrics", required_argument, NULL, OPT_METRICS},
    CLI_CRYPT_LONGOPTS,
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

int serve_parse_args(int argc, char **argv, struct serve_config *cfg, struct cli_err *err)
{
	uint64_t v;
	int c;

	memset(cfg, 0, sizeof(*cfg));
	cfg->ex[0].name = "";
	cfg->tls.mode = NBD_TLS_OFF;
	cfg->nex = 1;
	err->msg[0] = '\0';
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":U:p:b:sre:D:t:vhV", serve_longopts, NULL)) != -1) {
		switch (c) {
		case 'U':
			cfg->sock = optarg;
			break;
		case 'p':
			if (cli_parse_port("--port", optarg, cfg->port_buf, sizeof(cfg->port_buf),
					   err) < 0)
				return -EINVAL;
			cfg->port = cfg->port_buf;
			break;
		case 'b':
			cfg->addr = optarg;
			break;
		case 's':
			cfg->stdio = true;
			break;
		case 'r':
			cfg->ro = true;
			break;
		case 'e':
			cfg->ex[0].name = optarg;
			break;
		case 'D':
			cfg->desc = optarg;
			break;
		case OPT_EXPORT:
			if (cfg->nex >= SERVE_MAX_EXPORTS) {
				snprintf(err->msg, sizeof(err->msg), "--export: %d exports at most",
					 SERVE_MAX_EXPORTS - 1);
				return -EINVAL;
			}
			if (parse_export(optarg, &cfg->ex[cfg->nex], err) < 0)
				return -EINVAL;
			cfg->nex++;
			break;
		case OPT_ENGINE:
			if (aiol_engine_parse(optarg, &cfg->open.engine) < 0) {
				snprintf(err->msg, sizeof(err->msg),
					 "--engine '%s': unknown (uring, aio, threads or sync)",
					 optarg);
				return -EINVAL;
			}
			break;
		case OPT_DIRECT:
			if (!optarg) {
				cfg->open.direct = AIOL_DIRECT_ON;
			} else if (cli_parse_direct(optarg, &cfg->open.direct) < 0) {
				snprintf(err->msg, sizeof(err->msg),
					 "--direct '%s': unknown (auto, on or off)", optarg);
				return -EINVAL;
			}
			break;
		case OPT_OFFSET:
			if (cli_parse_size("--offset", optarg, 0, MAX_OFFSET, &cfg->ex[0].offset,
					   err) < 0)
				return -EINVAL;
			break;
		case OPT_SIZELIMIT:
			if (cli_parse_size("--sizelimit", optarg, 0, MAX_OFFSET,
					   &cfg->ex[0].sizelimit, err) < 0)
				return -EINVAL;
			break;
		case OPT_BLOCK_SIZE:
			if (cli_parse_block_size("--block-size", optarg, &cfg->open.block_size,
						 err) < 0)
				return -EINVAL;
			break;
		case 't':
			if (cli_parse_uint32("--threads", optarg, 1, 1024, &cfg->server.threads,
					     err) < 0)
				return -EINVAL;
			break;
		case OPT_MAX_CONN:
			if (cli_parse_uint32("--max-connections", optarg, 0, UINT_MAX,
					     &cfg->server.max_connections, err) < 0)
				return -EINVAL;
			break;
		case OPT_MAX_INFLIGHT:
			if (cli_parse_size("--max-inflight", optarg, 0, SIZE_MAX / 2, &v, err) < 0)
				return -EINVAL;
			cfg->server.max_inflight = (size_t)v;
			break;
		case OPT_PIDFILE:
			cfg->pidfile = optarg;
			break;
		case OPT_TLS:
			if (nbd_tls_mode_parse(optarg, &cfg->tls.mode) < 0) {
				snprintf(err->msg, sizeof(err->msg),
					 "--tls '%s': unknown (off, on or require)", optarg);
				return -EINVAL;
			}
			break;
		case OPT_TLS_CERTS:
			cfg->tls.cert_dir = optarg;
			break;
		case OPT_TLS_PSK:
			cfg->tls.psk_file = optarg;
			break;
		case OPT_TLS_VERIFY:
			cfg->tls.verify_peer = true;
			break;
		case OPT_MAX_CONN_INFLIGHT:
			if (cli_parse_size("--max-conn-inflight", optarg, 1, SIZE_MAX / 2, &v,
					   err) < 0)
				return -EINVAL;
			cfg->server.max_conn_inflight = (size_t)v;
			break;
		case OPT_POLL:
			if (cli_parse_uint("--poll", optarg, 0, 1000000, &v, err) < 0)
				return -EINVAL;
			cfg->server.poll_us = v ? (int)v : -1;
			break;
		case OPT_PAYLOAD_TIMEOUT:
			if (cli_parse_uint("--payload-timeout", optarg, 1, 3600, &v, err) < 0)
				return -EINVAL;
			cfg->server.payload_timeout_ms = (unsigned int)v * 1000;
			break;
		case OPT_HS_TIMEOUT:
			if (cli_parse_uint("--handshake-timeout", optarg, 1, 3600, &v, err) < 0)
				return -EINVAL;
			cfg->server.handshake_timeout_ms = (unsigned int)v * 1000;
			break;
		case OPT_FORK:
			cfg->daemonize = true;
			break;
		case OPT_CONTROL:
			cfg->control = optarg;
			break;
		case OPT_METRICS:
			if (cli_metrics_parse(optarg, &cfg->metrics, err) < 0)
				return -EINVAL;
			cfg->metrics_on = true;
			break;
		case CLI_OPT_ENCRYPT ... CLI_OPT_CRYPT_LAST:
			if (cli_crypt_opt(&cfg->crypt, c, optarg, err) < 0)
				return -EINVAL;
			break;
		case 'v':
			cfg->verbose++;
			break;
		case 'h':
			return CLI_HELP;
		case 'V':
			return CLI_VERSION;
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
	if (argc - optind > 1) {
		snprintf(err->msg, sizeof(err->msg), "one FILE at most (use --export for more)");
		return -EINVAL;
	}
	if (cfg->tls.mode == NBD_TLS_OFF && (cfg->tls.cert_dir || cfg->tls.psk_file))
		cfg->tls.mode = NBD_TLS_ON; /* credentials given: offer TLS, as qemu-nbd does */
	if (cli_crypt_finish(&cfg->crypt, err) < 0)
		return -EINVAL;
	if (cfg->stdio && cfg->crypt.key_file && !strcmp(cfg->crypt.key_file, "-")) {
		snprintf(err->msg, sizeof(err->msg),
			 "--key-file - and --stdio both want standard input");
		return -EINVAL;
	}
	if (cfg->sock && (cfg->port || cfg->addr)) {
		snprintf(err->msg, sizeof(err->msg), "-U and -p/-b exclude each other");
		return -EINVAL;
	}
	if (cfg->crypt.cipher && optind >= argc && cfg->nex == 1) {
		snprintf(err->msg, sizeof(err->msg),
			 "--encrypt needs a FILE (the demo image is not encrypted)");
		return -EINVAL;
	}
	if (optind < argc) {
		cfg->ex[0].file = argv[optind];
	} else if (cfg->nex > 1) {
		/* only --export: the first of them is the default */
		memmove(&cfg->ex[0], &cfg->ex[1], (cfg->nex - 1) * sizeof(cfg->ex[0]));
		cfg->nex--;
	}
	return CLI_RUN;
}

int cmd_serve(int argc, char **argv)
{
	struct serve_config cfg;
	struct cli_err err;
	struct serve_export *ex = cfg.ex;
	unsigned int nex;
	struct nbd_export_opts eo[SERVE_MAX_EXPORTS];
	struct aiol_dev *devs[SERVE_MAX_EXPORTS] = {NULL};
	struct serve_resize rsz[SERVE_MAX_EXPORTS];
	struct nbd_server_opts so;
	struct nbd_listen l = {.n = 0};
	struct nbd_server *srv = NULL;
	const char *sock, *port, *addr, *pidfile;
	struct nbd_tls_creds *tls = NULL;
	struct cli_argv av;
	struct cli_stats_src src[SERVE_MAX_EXPORTS];
	struct cli_ctl *ctl = NULL;
	struct cli_metrics *metrics = NULL;
	char ctl_name[32];
	struct aiol_crypt_opts copts;
	struct aiol_crypt_key *key = NULL;
	bool encrypted = false;
	char *demo = NULL;
	int ready_fd = -1;
	int ret, rc = 1, sfd = -1, nact;
	sigset_t mask;

	for (unsigned int i = 0; i < SERVE_MAX_EXPORTS; i++) {
		atomic_init(&rsz[i].dev, NULL);
		pthread_mutex_init(&rsz[i].mu, NULL);
	}
	ret = cli_config_expand(argc, argv, serve_longopts, &av, &err);
	if (ret == 0)
		ret = serve_parse_args(av.argc, av.argv, &cfg, &err);
	if (ret < 0) {
		fprintf(stderr, "aioloop serve: %s (see 'aioloop serve --help')\n", err.msg);
		cli_argv_free(&av);
		return EXIT_USAGE;
	}
	if (ret == CLI_HELP || ret == CLI_VERSION) {
		if (ret == CLI_HELP)
			usage(stdout);
		else
			printf("aioloop %s\n", AIOLOOP_VERSION);
		cli_argv_free(&av);
		return 0;
	}
	nex = cfg.nex;
	so = cfg.server;
	sock = cfg.sock;
	port = cfg.port;
	addr = cfg.addr;
	pidfile = cfg.pidfile;
	if (cfg.verbose)
		cli_log_setup(cfg.verbose > 1 ? AIOL_LOG_DEBUG_DATA : AIOL_LOG_DEBUG);

	/* The default export: FILE, or the demo image when nothing is given. */
	if (!ex[0].file) {
		demo = demo_image();
		if (!demo) {
			cli_argv_free(&av);
			return 1;
		}
		ex[0].file = demo;
		fprintf(stderr, "aioloop: no FILE given: serving the demo image %s (256 MiB)\n",
			demo);
	}

	/* The key is read before --fork (--key-file - is the caller's stdin). */
	if (cli_crypt_load(&cfg.crypt, &copts, &key) < 0)
		goto out; /* it said why */

	/* Signals: blocked everywhere (threads inherit the mask), read here. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		aiol_err("signalfd: %m");
		goto out;
	}

	nact = nbd_listen_systemd(&l);
	if (nact < 0)
		goto out;
	if (!nact && !cfg.stdio) {
		ret = sock ? nbd_listen_unix(&l, sock) : nbd_listen_tcp(&l, addr, port);
		if (ret < 0)
			goto out;
	}

	/* --fork: before any thread exists; the parent exits once the child
	 * serves (status 0) or failed (status 1). */
	if (cfg.daemonize && !cfg.stdio) {
		ret = fork_server(&ready_fd);
		if (ret < 0)
			goto out;
	}

	/* The exports are opened after --fork: an RBD image's connection
	 * runs threads of librados, which a fork would leave behind. */
	for (unsigned int i = 0; i < nex; i++) {
		struct aiol_open_opts o = cfg.open;

		o.crypt = key ? &copts : NULL;
		o.offset = ex[i].offset;
		o.sizelimit = ex[i].sizelimit;
		o.read_only = cfg.ro || ex[i].ro;
		o.on_resize = serve_on_resize;
		o.resize_arg = &rsz[i];
		ret = aiol_dev_open(ex[i].file, &o, &devs[i]);
		if (ret < 0)
			goto out; /* the engine said why */
		atomic_store(&rsz[i].dev, devs[i]);
		eo[i] = (struct nbd_export_opts){
		    .name = ex[i].name,
		    .description = i == 0 ? cfg.desc : NULL,
		    .dev = devs[i],
		};
	}
	/* Each export's stage has its own locked copy of the key. */
	encrypted = key != NULL;
	aiol_crypt_key_free(key);
	key = NULL;

	/* An RBD image completes on librbd's threads, which need the CPU that
	 * a polling worker would take: unless --poll says otherwise, sleep. */
	for (unsigned int i = 0; i < nex && !so.poll_us; i++)
		if (aiol_dev_info(devs[i])->engine == AIOL_ENGINE_RBD)
			so.poll_us = -1;
	/* With under 4 CPUs the clients, the workers and the kernel's
	 * completion work share them, and a worker that polls takes the CPU
	 * they need: on 2 vCPUs polling lost in every workload but one and
	 * cost twice the CPU (bench/results/2026-12-02-vm-goals.md).  Unless
	 * --poll says otherwise, sleep there too. */
	if (!so.poll_us && sysconf(_SC_NPROCESSORS_ONLN) < SERVE_POLL_MIN_CPUS) {
		so.poll_us = -1;
		aiol_info("polling off: %ld CPUs online (under %d; --poll USEC turns it on)",
			  sysconf(_SC_NPROCESSORS_ONLN), SERVE_POLL_MIN_CPUS);
	}

	if (nbd_tls_creds_load(&cfg.tls, &tls) < 0)
		goto out;	/* it said which file was wrong */
	so.tls = tls;
	ret = nbd_server_create(eo, nex, &so, &srv);
	if (ret < 0)
		goto out;
	if (pidfile && write_pidfile(pidfile) < 0)
		goto out;
	for (unsigned int i = 0; i < nex; i++)
		src[i] = (struct cli_stats_src){.sx = nbd_server_export_stats(srv, i),
						.name = ex[i].name,
						.kind = "nbd",
						.path = aiol_dev_info(devs[i])->path,
						.device = ""};
	snprintf(ctl_name, sizeof(ctl_name), "serve-%ld", (long)getpid());
	if (cli_observe_start(cfg.control, ctl_name, cfg.metrics_on ? &cfg.metrics : NULL, src,
			      nex, &ctl, &metrics) < 0)
		goto out;

	for (unsigned int i = 0; i < nex; i++) {
		const struct aiol_dev_info *in = aiol_dev_info(devs[i]);

		aiol_info("export '%s': %s, %" PRIu64 " bytes%s, engine %s%s", ex[i].name, in->path,
			  in->size, in->read_only ? ", read-only" : "",
			  aiol_engine_name(in->engine), in->direct ? ", O_DIRECT" : "");
		if (encrypted)
			aiol_info("export '%s': encrypted, %s, %u-byte sectors", ex[i].name,
				  copts.spec.name, copts.geom.sector_size);
	}

	if (ready_fd >= 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			close(null);
		}
		if (write(ready_fd, "1", 1) != 1)
			aiol_warn("cannot tell the parent process that the server runs: %m");
		close(ready_fd);
		ready_fd = -1;
	}

	if (cfg.stdio && !nact) {
		int in = dup(0), outfd = dup(1);

		if (in < 0 || outfd < 0) {
			aiol_err("dup: %m");
			goto out;
		}
		/* stdout now belongs to the protocol: keep stray prints off it. */
		if (dup2(2, 1) < 0)
			goto out;
		ret = nbd_server_add_client_fds(srv, in, outfd);
		if (ret < 0)
			goto out;
		for (;;) {
			struct pollfd p = {.fd = sfd, .events = POLLIN};

			if (poll(&p, 1, 100) > 0)
				break;
			if (nbd_server_connections(srv) == 0)
				break;
		}
	} else {
		if (sock)
			fprintf(stderr,
				"aioloop: listening on %s: nbdinfo 'nbd+unix:///?socket=%s', "
				"qemu-img info 'nbd+unix:///?socket=%s'\n",
				sock, sock, sock);
		else if (!nact)
			fprintf(stderr,
				"aioloop: listening on %s:%s: nbdinfo nbd://%s%s%s, "
				"qemu-img info nbd://%s%s%s\n",
				addr ? addr : "localhost", port ? port : NBD_DEFAULT_PORT,
				addr ? addr : "localhost", port ? ":" : "", port ? port : "",
				addr ? addr : "localhost", port ? ":" : "", port ? port : "");
		notify_ready(&cfg, devs, nact, sock, addr, port);
		ret = nbd_listen_run(&l, srv, sfd);
		if (ret < 0)
			aiol_err("accept loop: %s", strerror(-ret));
	}
	cli_notify("STOPPING=1\nSTATUS=shutting down");
	nbd_listen_close(&l);
	aiol_info("shutting down");
	cli_metrics_stop(metrics);
	cli_ctl_stop(ctl);
	metrics = NULL;
	ctl = NULL;
	ret = nbd_server_shutdown(srv);
	rc = ret < 0 ? 1 : 0;
out:
	nbd_listen_close(&l);
	cli_metrics_stop(metrics);
	cli_ctl_stop(ctl);
	nbd_server_destroy(srv);
	for (unsigned int i = 0; i < nex; i++)
		aiol_dev_close(devs[i]);
	for (unsigned int i = 0; i < SERVE_MAX_EXPORTS; i++)
		pthread_mutex_destroy(&rsz[i].mu);
	nbd_tls_creds_free(tls);
	aiol_crypt_key_free(key);
	if (pidfile && rc == 0)
		unlink(pidfile);
	if (sfd >= 0)
		close(sfd);
	free(demo);
	cli_argv_free(&av);
	return rc;
}
