// SPDX-License-Identifier: MIT
/*
 * aioloop resize / upgrade: requests to the daemon of a running ublk device.
 * The command leaves the request in STATE_DIR/NAME.<req> and signals the
 * daemon (ATTACH_SIG_CONTROL), which answers in NAME.<answer> (attach.c's
 * daemon side).  Single-threaded CLI code.
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
#include <strings.h>
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

/* ---- resize, upgrade: requests to a running daemon ---- */

#define CONTROL_WAIT_S 60

/*
 * Leave a request (content, in STATE_DIR/NAME<req>) for the daemon of s,
 * signal it and wait for its answer in NAME<ans>.  0 when it answered OK;
 * otherwise 1 with the reason printed (what names the command).
 */
static int control_request(const struct att_state *s, const char *what, const char *req,
			   const char *content, const char *ans)
{
	char path[PATH_MAX], line[256];
	FILE *f = NULL;
	int fd;

	state_path(s->name, ans, path, sizeof(path));
	unlink(path);
	state_path(s->name, req, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || dprintf(fd, "%s\n", content) < 0 || close(fd) < 0) {
		fprintf(stderr, "aioloop: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (kill(s->pid, ATTACH_SIG_CONTROL) < 0) {
		fprintf(stderr, "aioloop: %s: signal daemon %d: %s\n", s->device, (int)s->pid,
			strerror(errno));
		unlink(path);
		return 1;
	}
	state_path(s->name, ans, path, sizeof(path));
	for (int i = 0; i < CONTROL_WAIT_S * 20 && !f; i++) {
		f = fopen(path, "re");
		if (!f)
			usleep(50000);
	}
	if (!f) {
		fprintf(stderr, "aioloop: %s %s: no answer from daemon %d in %d s\n", what,
			s->device, (int)s->pid, CONTROL_WAIT_S);
		return 1;
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	unlink(path);
	line[strcspn(line, "\n")] = '\0';
	if (strncmp(line, "OK", 2)) {
		fprintf(stderr, "aioloop: %s %s: %s\n", what, s->device,
			strncmp(line, "ERR ", 4) ? "no answer" : line + 4);
		return 1;
	}
	return 0;
}

/* The state of a device whose daemon runs, for resize (ublk only) and
 * upgrade; 1 (printed why) when there is none. */
static int running_dev(const char *arg, const char *what, bool nbd_too, struct att_state *s)
{
	if (state_read(dev_name(arg), s) < 0) {
		fprintf(stderr, "aioloop: %s: not attached by aioloop\n", arg);
		return 1;
	}
	if (!nbd_too && strcmp(s->type, "ublk")) {
		fprintf(stderr,
			"aioloop: %s: a kernel NBD device cannot be %s (the kernel client takes "
			"its size and server when it connects); detach and attach again\n",
			arg, what);
		return 1;
	}
	if (!pid_alive(s->pid)) {
		fprintf(stderr, "aioloop: %s: its daemon (pid %d) is not running\n", arg,
			(int)s->pid);
		return 1;
	}
	return 0;
}

int cmd_resize(int argc, char **argv)
{
	struct att_state s;
	struct cli_err err;
	uint64_t size = 0;
	struct stat sb;
	char req[48];

	if (argc < 2 || argc > 3 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fprintf(argc < 2 || argc > 3 ? stderr : stdout,
			"Usage: aioloop resize DEVICE [SIZE]\n"
			"Tell the kernel the device's new size: without SIZE, what the backing\n"
			"file (or rbd: image) has now (losetup -c); with SIZE, that many bytes (a\n"
			"backing file that is shorter is extended; an image is not).  ublk\n"
			"devices, Linux 6.16+.\n");
		return argc < 2 || argc > 3 ? EXIT_USAGE : 0;
	}
	if (argc == 3 && cli_parse_size("SIZE", argv[2], 1, INT64_MAX, &size, &err) < 0) {
		fprintf(stderr, "aioloop resize: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (running_dev(argv[1], "resized", false, &s))
		return 1;
	if (size && stat(s.backing, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    (uint64_t)sb.st_size < s.offset + size &&
	    truncate(s.backing, (off_t)(s.offset + size)) < 0) {
		fprintf(stderr, "aioloop: %s: extending to %" PRIu64 " bytes: %s\n", s.backing,
			s.offset + size, strerror(errno));
		return 1;
	}
	snprintf(req, sizeof(req), "sizelimit=%" PRIu64, size);
	return control_request(&s, "resize", ".resize", req, ".resized");
}

#define UPGRADE_EXIT_WAIT_S 60

/*
 * aioloop upgrade DEVICE: the running daemon quiesces the device (ublk) or
 * syncs the backing and closes its connections (kernel NBD, where the
 * kernel keeps the device for dead_conn_timeout), so that I/O waits in the
 * kernel, and lets go of it; this program, the binary installed now, then
 * recovers it with a new daemon, as attach --recover does.
 */
int cmd_upgrade(int argc, char **argv)
{
	char *rargv[] = {"attach", "--recover", NULL, NULL};
	struct att_state s;

	if (argc != 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fprintf(argc != 2 ? stderr : stdout,
			"Usage: aioloop upgrade DEVICE\n"
			"Hand a device to a new daemon (this aioloop binary) without failing\n"
			"its I/O: the old daemon quiesces the device and exits, the new one\n"
			"recovers it.  ublk: Linux 6.16+ (UBLK_F_QUIESCE); kernel NBD: a device\n"
			"attached with --recovery reissue (the default), whose I/O waits for the\n"
			"new daemon; requests the old one left unanswered are sent again after\n"
			"--timeout.\n");
		return argc != 2 ? EXIT_USAGE : 0;
	}
	if (running_dev(argv[1], "upgraded", true, &s))
		return 1;
	if (control_request(&s, "upgrade", ".upgrade", "upgrade", ".upgraded"))
		return 1;
	for (int i = 0; i < UPGRADE_EXIT_WAIT_S * 20 && pid_alive(s.pid); i++)
		usleep(50000);
	if (pid_alive(s.pid)) {
		fprintf(stderr,
			"aioloop: upgrade %s: daemon %d still running %d s after the device was "
			"quiesced\n",
			s.device, (int)s.pid, UPGRADE_EXIT_WAIT_S);
		return 1;
	}
	rargv[2] = s.device;
	return cmd_attach(3, rargv);
}
