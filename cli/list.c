// SPDX-License-Identifier: MIT
/*
 * aioloop list: the devices aioloop attached, read from their state files,
 * with losetup's column names (and ours), then the exports of running
 * servers through their control sockets.  Single-threaded CLI code.
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

/* ---- list ---- */

/*
 * Columns: losetup's names for what losetup shows, then ours.  The JSON
 * keys are the names in lower case, as losetup --json writes them.
 */
enum col_id {
	COL_NAME,
	COL_BACK_FILE,
	COL_BACK_INO,
	COL_BACK_MAJMIN,
	COL_MAJMIN,
	COL_OFFSET,
	COL_SIZELIMIT,
	COL_RO,
	COL_DIO,
	COL_LOG_SEC,
	COL_PARTSCAN,
	COL_TYPE,
	COL_SIZE,
	COL_ENGINE,
	COL_STORE,
	COL_DATA_PATH,
	COL_QUEUES,
	COL_PID,
	COL_RUNNING,
	COL_COUNT,
};

enum col_kind { K_STR, K_NUM, K_BOOL };

static const struct list_col {
	const char *name;
	int width; /* text output; < 0: left-aligned */
	enum col_kind kind;
} list_cols[COL_COUNT] = {
    [COL_NAME] = {"NAME", -12, K_STR},
    [COL_BACK_FILE] = {"BACK-FILE", 0, K_STR},
    [COL_BACK_INO] = {"BACK-INO", 9, K_NUM},
    [COL_BACK_MAJMIN] = {"BACK-MAJ:MIN", -12, K_STR},
    [COL_MAJMIN] = {"MAJ:MIN", -7, K_STR},
    [COL_OFFSET] = {"OFFSET", 10, K_NUM},
    [COL_SIZELIMIT] = {"SIZELIMIT", 10, K_NUM},
    [COL_RO] = {"RO", 2, K_BOOL},
    [COL_DIO] = {"DIO", 3, K_BOOL},
    [COL_LOG_SEC] = {"LOG-SEC", 7, K_NUM},
    [COL_PARTSCAN] = {"PARTSCAN", 8, K_BOOL},
    [COL_TYPE] = {"TYPE", -4, K_STR},
    [COL_SIZE] = {"SIZE", 12, K_NUM},
    [COL_ENGINE] = {"ENGINE", -7, K_STR},
    [COL_STORE] = {"STORE", -8, K_STR},
    [COL_DATA_PATH] = {"DATA-PATH", -14, K_STR},
    [COL_QUEUES] = {"QUEUES", 6, K_NUM},
    [COL_PID] = {"PID", 8, K_STR},
    [COL_RUNNING] = {"RUNNING", 7, K_BOOL},
};

static const enum col_id list_default[] = {COL_NAME, COL_TYPE,	   COL_OFFSET, COL_SIZELIMIT,
					   COL_RO,   COL_DIO,	   COL_ENGINE, COL_DATA_PATH,
					   COL_PID,  COL_BACK_FILE};

struct list_ctx {
	bool json, raw, noheadings;
	enum col_id cols[COL_COUNT];
	unsigned int ncols;
	bool filter; /* -j: only devices backed by this file */
	dev_t f_dev;
	ino_t f_ino;
	const char *f_path;
	int count;
};

/* Parse -O's comma-separated column names (any case); -EINVAL if unknown. */
static int list_parse_cols(const char *arg, struct list_ctx *l, char *bad, size_t len)
{
	char buf[512], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", arg);
	l->ncols = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned int c;

		for (c = 0; c < COL_COUNT; c++)
			if (!strcasecmp(tok, list_cols[c].name))
				break;
		if (c == COL_COUNT || l->ncols == COL_COUNT) {
			snprintf(bad, len, "%s", tok);
			return -EINVAL;
		}
		l->cols[l->ncols++] = (enum col_id)c;
	}
	return l->ncols ? 0 : -EINVAL;
}

/* The value of column c for s, as text (for JSON: a number, true/false or
 * a string to quote, by the column's kind). */
static void list_value(const struct att_state *s, enum col_id c, bool alive, char *v, size_t len)
{
	struct stat sb;
	char path[96];
	FILE *f;
	int n = 0;

	switch (c) {
	case COL_NAME:
		snprintf(v, len, "%s", s->device);
		break;
	case COL_BACK_FILE:
		snprintf(v, len, "%s", s->backing);
		break;
	case COL_BACK_INO:
		snprintf(v, len, "%llu",
			 stat(s->backing, &sb) == 0 ? (unsigned long long)sb.st_ino : 0ULL);
		break;
	case COL_BACK_MAJMIN:
		if (stat(s->backing, &sb) == 0)
			snprintf(v, len, "%u:%u", major(sb.st_dev), minor(sb.st_dev));
		else
			snprintf(v, len, "-");
		break;
	case COL_MAJMIN:
		if (stat(s->device, &sb) == 0 && S_ISBLK(sb.st_mode))
			snprintf(v, len, "%u:%u", major(sb.st_rdev), minor(sb.st_rdev));
		else
			snprintf(v, len, "-");
		break;
	case COL_OFFSET:
		snprintf(v, len, "%" PRIu64, s->offset);
		break;
	case COL_SIZELIMIT:
		snprintf(v, len, "%" PRIu64, s->sizelimit);
		break;
	case COL_RO:
		snprintf(v, len, "%d", s->ro);
		break;
	case COL_DIO:
		snprintf(v, len, "%d", s->direct);
		break;
	case COL_LOG_SEC:
		snprintf(v, len, "%u", s->block_size);
		break;
	case COL_PARTSCAN:
		/* as asked at attach (-P, --no-partscan); else whether the
		 * disk takes partitions, which the kernel then scans */
		if (s->partscan >= 0) {
			snprintf(v, len, "%d", s->partscan);
			break;
		}
		snprintf(path, sizeof(path), "/sys/block/%s/ext_range", s->name);
		f = fopen(path, "re");
		if (f) {
			if (fscanf(f, "%d", &n) != 1)
				n = 0;
			fclose(f);
		}
		snprintf(v, len, "%d", n > 1);
		break;
	case COL_TYPE:
		snprintf(v, len, "%s", s->type);
		break;
	case COL_SIZE:
		snprintf(v, len, "%" PRIu64, s->size);
		break;
	case COL_ENGINE:
		snprintf(v, len, "%s", s->engine);
		break;
	case COL_STORE:
		snprintf(v, len, "%s",
			 stat(s->backing, &sb) < 0 ? "-"
			 : S_ISBLK(sb.st_mode)	   ? "blockdev"
						   : "file");
		break;
	case COL_DATA_PATH:
		snprintf(v, len, "%s", s->data_path[0] ? s->data_path : "-");
		break;
	case COL_QUEUES:
		snprintf(v, len, "%u", s->queues);
		break;
	case COL_PID:
		/* a '!' after the pid: the daemon is not running */
		snprintf(v, len, "%d%s", (int)s->pid, alive ? "" : "!");
		break;
	case COL_RUNNING:
	default:
		snprintf(v, len, "%d", alive);
		break;
	}
}

static void list_text(const struct list_ctx *l, const char *const *v)
{
	for (unsigned int i = 0; i < l->ncols; i++) {
		int w = list_cols[l->cols[i]].width;
		bool last = i + 1 == l->ncols;

		if (l->raw || (last && w < 0))
			printf("%s%s", v[i], last ? "" : " ");
		else
			printf("%*s%s", w, v[i], last ? "" : " ");
	}
	printf("\n");
}

static int list_cb(const char *name, void *arg)
{
	struct list_ctx *l = arg;
	char vals[COL_COUNT][PATH_MAX];
	const char *v[COL_COUNT];
	struct att_state s;
	struct stat sb;
	bool alive;

	if (state_read(name, &s) < 0)
		return 0;
	if (l->filter) {
		bool same = stat(s.backing, &sb) == 0
				? sb.st_dev == l->f_dev && sb.st_ino == l->f_ino
				: !strcmp(s.backing, l->f_path);

		if (!same)
			return 0;
	}
	alive = pid_alive(s.pid);
	for (unsigned int i = 0; i < l->ncols; i++) {
		list_value(&s, l->cols[i], alive, vals[i], sizeof(vals[i]));
		v[i] = vals[i];
	}
	if (!l->json) {
		list_text(l, v);
		l->count++;
		return 0;
	}
	printf("%s\n      {", l->count ? "," : "");
	for (unsigned int i = 0; i < l->ncols; i++) {
		const struct list_col *c = &list_cols[l->cols[i]];
		char key[32];

		for (unsigned int k = 0; k < sizeof(key) - 1; k++) {
			key[k] = (char)tolower((unsigned char)c->name[k]);
			if (!c->name[k])
				break;
		}
		key[sizeof(key) - 1] = '\0';
		printf("%s\"%s\": ", i ? ", " : "", key);
		if (c->kind == K_BOOL)
			printf("%s", strcmp(v[i], "0") ? "true" : "false");
		else if (c->kind == K_NUM)
			printf("%s", v[i]);
		else if (l->cols[i] == COL_PID)
			printf("%d", (int)s.pid);
		else
			cli_json_string(stdout, v[i]);
	}
	printf("}");
	l->count++;
	return 0;
}

/* The exports of running 'aioloop serve' processes, through their control
 * sockets (devices have theirs too, but are listed from their state). */
static void list_servers(bool json, const char *control)
{
	struct cli_proc_stats *ps;
	int n = cli_stats_fetch_all(control, NULL, &ps), shown = 0;

	if (n < 0)
		n = 0;
	if (json)
		printf(",\n   \"aioexports\": [");
	for (int p = 0; p < n; p++)
		for (int i = 0; i < ps[p].n; i++) {
			const struct stats_snap *e = &ps[p].s[i];
			uint64_t req = 0;

			if (e->device[0])
				continue;
			for (int o = 0; o < STATS_NOPS; o++)
				req += e->total.op[o].done;
			if (json) {
				printf("%s\n      {\"export\": ", shown ? "," : "");
				cli_json_string(stdout, e->name);
				printf(", \"pid\": %ld, \"connections\": %u, \"requests\": %" PRIu64
				       ", \"back-file\": ",
				       ps[p].pid, e->nconns, req);
				cli_json_string(stdout, e->path);
				printf(", \"control\": ");
				cli_json_string(stdout, ps[p].ctl);
				printf("}");
			} else {
				if (!shown)
					printf("\n%-16s %7s %5s %12s  %s\n", "EXPORT", "PID",
					       "CONNS", "REQUESTS", "BACK-FILE");
				printf("%-16s %7ld %5u %12" PRIu64 "  %s\n",
				       e->name[0] ? e->name : "''", ps[p].pid, e->nconns, req,
				       e->path);
			}
			shown++;
		}
	if (json)
		printf("%s]", shown ? "\n   " : "");
	cli_stats_free_all(ps, n);
}

static void list_usage(FILE *f)
{
	fprintf(
	    f, "Usage: aioloop list [--json] [-n] [--raw] [-O COL,...] [-j FILE] [--control PATH]\n"
	       "List devices attached by aioloop, with losetup's column names, then the\n"
	       "exports of running 'aioloop serve' processes (through their control\n"
	       "sockets: every " CLI_RUN_DIR "/*.ctl, or PATH).\n\n"
	       "  -J, --json           JSON, keys as the column names in lower case\n"
	       "  -n, --noheadings     no heading line\n"
	       "      --raw            values separated by one space, not aligned\n"
	       "  -O, --output COLS    these columns (default NAME,TYPE,OFFSET,SIZELIMIT,\n"
	       "                       RO,DIO,ENGINE,DATA-PATH,PID,BACK-FILE; --json: all)\n"
	       "  -j, --associated F   only devices backed by file F\n"
	       "      --control PATH   the control socket of one server\n\n"
	       "Columns: NAME BACK-FILE BACK-INO BACK-MAJ:MIN MAJ:MIN OFFSET SIZELIMIT RO\n"
	       "DIO LOG-SEC PARTSCAN (as losetup), TYPE SIZE ENGINE STORE DATA-PATH QUEUES\n"
	       "PID RUNNING.  A '!' after the pid: the daemon is not running.\n");
}

int cmd_list(int argc, char **argv)
{
	static const struct option lopts[] = {{"json", no_argument, NULL, 'J'},
					      {"noheadings", no_argument, NULL, 'n'},
					      {"raw", no_argument, NULL, 'r'},
					      {"output", required_argument, NULL, 'O'},
					      {"associated", required_argument, NULL, 'j'},
					      {"control", required_argument, NULL, 'C'},
					      {"help", no_argument, NULL, 'h'},
					      {0}};
	struct list_ctx l = {0};
	const char *control = NULL;
	const char *output = NULL;
	char bad[64];
	struct stat sb;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":JnO:j:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'J':
			l.json = true;
			break;
		case 'n':
			l.noheadings = true;
			break;
		case 'r':
			l.raw = true;
			break;
		case 'O':
			output = optarg;
			break;
		case 'j':
			l.filter = true;
			l.f_path = optarg;
			break;
		case 'C':
			control = optarg;
			break;
		case 'h':
			list_usage(stdout);
			return 0;
		default:
			fprintf(stderr, "aioloop: list: %s '%s'\n",
				c == ':' ? "missing value for" : "unknown option",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "aioloop: list: unexpected '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (output) {
		if (list_parse_cols(output, &l, bad, sizeof(bad)) < 0) {
			fprintf(stderr, "aioloop: list: -O: unknown column '%s'\n", bad);
			return EXIT_USAGE;
		}
	} else if (l.json) {
		for (l.ncols = 0; l.ncols < COL_COUNT; l.ncols++)
			l.cols[l.ncols] = (enum col_id)l.ncols;
	} else {
		l.ncols = sizeof(list_default) / sizeof(list_default[0]);
		memcpy(l.cols, list_default, sizeof(list_default));
	}
	if (l.filter) {
		if (stat(l.f_path, &sb) < 0) {
			fprintf(stderr, "aioloop: list: %s: %s\n", l.f_path, strerror(errno));
			return 1;
		}
		l.f_dev = sb.st_dev;
		l.f_ino = sb.st_ino;
	}
	if (l.json) {
		printf("{\n   \"aiodevices\": [");
	} else if (!l.noheadings) {
		const char *h[COL_COUNT];

		for (unsigned int i = 0; i < l.ncols; i++)
			h[i] = list_cols[l.cols[i]].name;
		list_text(&l, h);
	}
	for_each_state(list_cb, &l);
	if (l.json)
		printf("%s]", l.count ? "\n   " : "");
	list_servers(l.json, control);
	if (l.json)
		printf("\n}\n");
	return 0;
}
