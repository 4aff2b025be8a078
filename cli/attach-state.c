// SPDX-License-Identifier: MIT
/*
 * The state files of attached devices (see attach-state.h): written by the
 * attach daemon, read by list, detach, resize and upgrade.
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

/* ---- state files ---- */

void state_path(const char *name, const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, STATE_DIR "/%s%s", name, suffix);
}

int state_write(const struct att_state *s)
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
		"direct_opt=%s\nengine=%s\ndata_path=%s\nqueues=%u\ndepth=%u\npid=%d\n",
		s->device, s->type, s->dev_id, s->backing, s->offset, s->sizelimit, s->size,
		s->block_size, s->ro, s->direct, s->direct_opt, s->engine, s->data_path, s->queues,
		s->depth, (int)s->pid);
	if (s->partscan >= 0)
		fprintf(f, "partscan=%d\n", s->partscan);
	if (!strcmp(s->type, "nbd"))
		fprintf(f, "nbd_timeout=%u\nnbd_dead_conn_timeout=%u\n", s->nbd_timeout,
			s->nbd_dead_conn);
	if (s->encrypt[0])
		fprintf(
		    f,
		    "encrypt=%s\nencrypt_sector_size=%u\niv_large_sectors=%d\niv_offset=%" PRIu64
		    "\nallow_discards=%d\n",
		    s->encrypt, s->enc_sector, s->iv_large, s->iv_offset, s->allow_discards);
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		aiol_err("%s: %m", path);
		unlink(tmp);
		return -errno;
	}
	return 0;
}

int state_read(const char *name, struct att_state *s)
{
	char path[PATH_MAX], line[PATH_MAX + 32];
	FILE *f;

	memset(s, 0, sizeof(*s));
	s->partscan = -1;
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
		else if (!strcmp(line, "data_path"))
			snprintf(s->data_path, sizeof(s->data_path), "%s", v);
		else if (!strcmp(line, "queues"))
			s->queues = (unsigned int)atoi(v);
		else if (!strcmp(line, "depth"))
			s->depth = (unsigned int)atoi(v);
		else if (!strcmp(line, "pid"))
			s->pid = (pid_t)atoi(v);
		else if (!strcmp(line, "partscan"))
			s->partscan = atoi(v) != 0;
		else if (!strcmp(line, "nbd_timeout"))
			s->nbd_timeout = (unsigned int)atoi(v);
		else if (!strcmp(line, "nbd_dead_conn_timeout"))
			s->nbd_dead_conn = (unsigned int)atoi(v);
		else if (!strcmp(line, "encrypt"))
			snprintf(s->encrypt, sizeof(s->encrypt), "%s", v);
		else if (!strcmp(line, "encrypt_sector_size"))
			s->enc_sector = (unsigned int)atoi(v);
		else if (!strcmp(line, "iv_large_sectors"))
			s->iv_large = atoi(v) != 0;
		else if (!strcmp(line, "iv_offset"))
			s->iv_offset = strtoull(v, NULL, 10);
		else if (!strcmp(line, "allow_discards"))
			s->allow_discards = atoi(v) != 0;
	}
	fclose(f);
	return s->device[0] ? 0 : -EINVAL;
}

void state_remove(const char *name)
{
	char path[PATH_MAX];

	state_path(name, "", path, sizeof(path));
	unlink(path);
	/* A daemon killed before it could close its control socket left it. */
	state_path(name, ".ctl", path, sizeof(path));
	unlink(path);
}

/* A device gone for good (detached, or its daemon ended cleanly): its log
 * goes with it. */
void log_remove(const char *name)
{
	char path[PATH_MAX];

	state_path(name, ".log", path, sizeof(path));
	unlink(path);
}

/* "/dev/ublkb0", "ublkb0" -> "ublkb0" */
const char *dev_name(const char *arg)
{
	const char *p = strrchr(arg, '/');

	return p ? p + 1 : arg;
}

/* Whether pid is alive (a zombie counts as gone). */
bool pid_alive(pid_t pid)
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

int for_each_state(int (*fn)(const char *name, void *arg), void *arg)
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
