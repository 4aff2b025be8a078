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
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "cli.h"
#include "nbd/listen.h"
#include "nbd/server.h"
#include "nbd/tls.h"

#define MAX_EXPORTS 64
#define DEMO_SIZE ((uint64_t)256 << 20)

struct export_arg {
	const char *name;
	char *file;
	bool ro;
	uint64_t offset, sizelimit;
};

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
		"Server:\n"
		"  -t, --threads N          worker threads (default: one per CPU)\n"
		"      --max-connections N  refuse clients beyond N (default: unlimited)\n"
		"      --max-inflight SIZE  in-flight data cap, split across workers; each needs "
		"%zu MiB\n"
		"      --max-conn-inflight SIZE  in-flight data one connection may hold (default 128M)\n"
		"      --handshake-timeout S  drop clients still negotiating after S seconds (default 10)\n"
		"      --payload-timeout S  drop clients that take over S seconds to send a WRITE's data "
		"(default 60)\n"
		"      --poll USEC          a busy worker polls for completions this long before it "
		"sleeps\n"
		"                           (default %d; 0: sleep at once, saving CPU, costing "
		"latency)\n"
		"      --pidfile FILE       write the process id to FILE once listening\n"
		"      --fork               run in the background once listening (default: "
		"foreground)\n"
		"  -v, --verbose            more messages (-vv: every request)\n"
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

/* NAME=FILE[,ro][,offset=N][,sizelimit=N] */
static int parse_export(char *arg, struct export_arg *e)
{
	char *eq = strchr(arg, '='), *opt, *save = NULL;

	if (!eq)
		return -EINVAL;
	*eq = '\0';
	e->name = arg;
	e->file = strtok_r(eq + 1, ",", &save);
	if (!e->file || !*e->file)
		return -EINVAL;
	while ((opt = strtok_r(NULL, ",", &save))) {
		if (!strcmp(opt, "ro"))
			e->ro = true;
		else if (!strncmp(opt, "offset=", 7)) {
			if (cli_parse_size(opt + 7, &e->offset) < 0)
				return -EINVAL;
		} else if (!strncmp(opt, "sizelimit=", 10)) {
			if (cli_parse_size(opt + 10, &e->sizelimit) < 0)
				return -EINVAL;
		} else {
			return -EINVAL;
		}
	}
	return 0;
}

/* Create (or reuse) the demo image in $AIOLOOP_DEMO_DIR, else /var/tmp,
 * else /tmp; returns a malloc'd path or NULL. */
static char *demo_image(void)
{
	const char *dirs[] = {getenv("AIOLOOP_DEMO_DIR"), "/var/tmp", "/tmp"};
	char *path = NULL;
	char block[4096];
	struct stat st;
	int fd = -1;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i] || !*dirs[i])
			continue;
		if (asprintf(&path, "%s/aioloop-demo.img", dirs[i]) < 0)
			return NULL;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    (uint64_t)st.st_size == DEMO_SIZE && access(path, R_OK | W_OK) == 0)
			return path; /* from an earlier run */
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0)
			break;
		free(path);
		path = NULL;
	}
	if (fd < 0) {
		aiol_err("cannot create a demo image in /var/tmp or /tmp: %m");
		return NULL;
	}
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
};

static const struct option longopts[] = {
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
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static int bad(const char *what, const char *arg)
{
	fprintf(stderr, "aioloop serve: invalid %s '%s'\n", what, arg);
	return EXIT_USAGE;
}

int cmd_serve(int argc, char **argv)
{
	struct export_arg ex[MAX_EXPORTS];
	unsigned int nex = 0;
	struct nbd_export_opts eo[MAX_EXPORTS];
	struct aiol_dev *devs[MAX_EXPORTS] = {NULL};
	struct aiol_open_opts oo = {0};
	struct nbd_server_opts so = {0};
	struct nbd_listen l = {.n = 0};
	struct nbd_server *srv = NULL;
	const char *sock = NULL, *port = NULL, *addr = NULL, *name = "", *desc = NULL;
	const char *pidfile = NULL;
	struct nbd_tls_opts tlso = { .mode = NBD_TLS_OFF };
	struct nbd_tls_creds *tls = NULL;
	char *demo = NULL;
	bool stdio = false, ro = false, daemonize = false;
	int ready_fd = -1;
	uint64_t v, offset = 0, sizelimit = 0;
	int verbose = 0, c, ret, rc = 1, sfd = -1, nact;
	sigset_t mask;

	optind = 1;
	while ((c = getopt_long(argc, argv, "U:p:b:sre:D:t:vhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'U':
			sock = optarg;
			break;
		case 'p':
			port = optarg;
			break;
		case 'b':
			addr = optarg;
			break;
		case 's':
			stdio = true;
			break;
		case 'r':
			ro = true;
			break;
		case 'e':
			name = optarg;
			break;
		case 'D':
			desc = optarg;
			break;
		case OPT_EXPORT:
			if (nex + 1 >= MAX_EXPORTS)
				return bad("--export (too many)", optarg);
			memset(&ex[nex + 1], 0, sizeof(ex[0]));
			if (parse_export(optarg, &ex[nex + 1]) < 0)
				return bad("--export", optarg);
			nex++;
			break;
		case OPT_ENGINE:
			if (aiol_engine_parse(optarg, &oo.engine) < 0)
				return bad("engine", optarg);
			break;
		case OPT_DIRECT:
			if (!optarg)
				oo.direct = AIOL_DIRECT_ON;
			else if (cli_parse_direct(optarg, &oo.direct) < 0)
				return bad("--direct", optarg);
			break;
		case OPT_OFFSET:
			if (cli_parse_size(optarg, &offset) < 0)
				return bad("offset", optarg);
			break;
		case OPT_SIZELIMIT:
			if (cli_parse_size(optarg, &sizelimit) < 0)
				return bad("size limit", optarg);
			break;
		case OPT_BLOCK_SIZE:
			if (cli_parse_size(optarg, &v) < 0 || (v != 512 && v != 4096))
				return bad("block size", optarg);
			oo.block_size = (unsigned int)v;
			break;
		case 't':
			if (cli_parse_size(optarg, &v) < 0 || v == 0 || v > 1024)
				return bad("thread count", optarg);
			so.threads = (unsigned int)v;
			break;
		case OPT_MAX_CONN:
			if (cli_parse_size(optarg, &v) < 0 || v > UINT_MAX)
				return bad("connection limit", optarg);
			so.max_connections = (unsigned int)v;
			break;
		case OPT_MAX_INFLIGHT:
			if (cli_parse_size(optarg, &v) < 0 || v > SIZE_MAX / 2)
				return bad("in-flight cap", optarg);
			so.max_inflight = (size_t)v;
			break;
		case OPT_PIDFILE:
			pidfile = optarg;
			break;
		case OPT_TLS:
			if (nbd_tls_mode_parse(optarg, &tlso.mode) < 0)
				return bad("--tls (off, on or require)", optarg);
			break;
		case OPT_TLS_CERTS:
			tlso.cert_dir = optarg;
			break;
		case OPT_TLS_PSK:
			tlso.psk_file = optarg;
			break;
		case OPT_TLS_VERIFY:
			tlso.verify_peer = true;
			break;
		case OPT_MAX_CONN_INFLIGHT:
			if (cli_parse_size(optarg, &v) < 0 || v == 0 || v > SIZE_MAX / 2)
				return bad("per-connection in-flight cap", optarg);
			so.max_conn_inflight = (size_t)v;
			break;
		case OPT_POLL:
			if (cli_parse_size(optarg, &v) < 0 || v > 1000000)
				return bad("poll time (0-1000000 microseconds)", optarg);
			so.poll_us = v ? (int)v : -1;
			break;
		case OPT_PAYLOAD_TIMEOUT:
			if (cli_parse_size(optarg, &v) < 0 || v == 0 || v > 3600)
				return bad("payload timeout (1-3600 seconds)", optarg);
			so.payload_timeout_ms = (unsigned int)v * 1000;
			break;
		case OPT_HS_TIMEOUT:
			if (cli_parse_size(optarg, &v) < 0 || v == 0 || v > 3600)
				return bad("handshake timeout (1-3600 seconds)", optarg);
			so.handshake_timeout_ms = (unsigned int)v * 1000;
			break;
		case OPT_FORK:
			daemonize = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("aioloop 0.1.0\n");
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr, "aioloop serve: one FILE at most (use --export for more)\n");
		return EXIT_USAGE;
	}
	if (verbose)
		aiol_log_setup("aioloop", verbose > 1 ? AIOL_LOG_DEBUG_DATA : AIOL_LOG_DEBUG, NULL);
	if (tlso.mode == NBD_TLS_OFF && (tlso.cert_dir || tlso.psk_file))
		tlso.mode = NBD_TLS_ON;	/* credentials given: offer TLS, as qemu-nbd does */
	if (sock && (port || addr)) {
		fprintf(stderr, "aioloop serve: -U and -p/-b exclude each other\n");
		return EXIT_USAGE;
	}

	/* The default export: FILE, or the demo image when nothing is given. */
	memset(&ex[0], 0, sizeof(ex[0]));
	ex[0].name = name;
	ex[0].offset = offset;
	ex[0].sizelimit = sizelimit;
	if (optind < argc) {
		ex[0].file = argv[optind];
	} else if (nex) {
		/* only --export: the first of them is the default */
		memmove(&ex[0], &ex[1], nex * sizeof(ex[0]));
		nex--;
	} else {
		demo = demo_image();
		if (!demo)
			return 1;
		ex[0].file = demo;
		fprintf(stderr, "aioloop: no FILE given: serving the demo image %s (256 MiB)\n",
			demo);
	}
	nex++;

	for (unsigned int i = 0; i < nex; i++) {
		struct aiol_open_opts o = oo;

		o.offset = ex[i].offset;
		o.sizelimit = ex[i].sizelimit;
		o.read_only = ro || ex[i].ro;
		ret = aiol_dev_open(ex[i].file, &o, &devs[i]);
		if (ret < 0)
			goto out; /* the engine said why */
		eo[i] = (struct nbd_export_opts){
		    .name = ex[i].name,
		    .description = i == 0 ? desc : NULL,
		    .dev = devs[i],
		};
	}

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
	if (!nact && !stdio) {
		ret = sock ? nbd_listen_unix(&l, sock) : nbd_listen_tcp(&l, addr, port);
		if (ret < 0)
			goto out;
	}

	/* --fork: before any thread exists; the parent exits once the child
	 * serves (status 0) or failed (status 1). */
	if (daemonize && !stdio) {
		ret = fork_server(&ready_fd);
		if (ret < 0)
			goto out;
	}

	if (nbd_tls_creds_load(&tlso, &tls) < 0)
		goto out;	/* it said which file was wrong */
	so.tls = tls;
	ret = nbd_server_create(eo, nex, &so, &srv);
	if (ret < 0)
		goto out;
	if (pidfile && write_pidfile(pidfile) < 0)
		goto out;

	for (unsigned int i = 0; i < nex; i++) {
		const struct aiol_dev_info *in = aiol_dev_info(devs[i]);

		aiol_info("export '%s': %s, %" PRIu64 " bytes%s, engine %s%s", ex[i].name, in->path,
			  in->size, in->read_only ? ", read-only" : "",
			  aiol_engine_name(in->engine), in->direct ? ", O_DIRECT" : "");
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

	if (stdio && !nact) {
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
		ret = nbd_listen_run(&l, srv, sfd);
		if (ret < 0)
			aiol_err("accept loop: %s", strerror(-ret));
	}
	nbd_listen_close(&l);
	aiol_info("shutting down");
	ret = nbd_server_shutdown(srv);
	rc = ret < 0 ? 1 : 0;
out:
	nbd_listen_close(&l);
	nbd_server_destroy(srv);
	for (unsigned int i = 0; i < nex; i++)
		aiol_dev_close(devs[i]);
	nbd_tls_creds_free(tls);
	if (pidfile && rc == 0)
		unlink(pidfile);
	if (sfd >= 0)
		close(sfd);
	free(demo);
	return rc;
}
