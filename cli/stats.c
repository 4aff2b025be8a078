// SPDX-License-Identifier: MIT
/*
 * aioloop stats: the request statistics of running servers and device
 * daemons, read through their control sockets (cli/control.c; every
 * CLI_RUN_DIR/ *.ctl, or the one --control names): per export or device and
 * operation, requests, bytes, errors by errno, in flight and latency
 * percentiles, since start and since the previous reading; per NBD
 * connection too.  --json for scripts; --watch SECS redraws like
 * 'iostat -x': the rates and latencies of each interval, computed here from
 * consecutive dumps (histograms included), so several watchers do not
 * disturb each other.
 *
 * Single-threaded; blocking socket I/O with the peer's answer bounded by
 * the size it may have.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define DUMP_MAX ((size_t)64 << 20)
#define ANSWER_TIMEOUT_MS 5000

static void stats_usage(FILE *f)
{
	fprintf(f, "Usage: aioloop stats [NAME|DEV] [--json] [--watch SECS [--count N]]\n"
		   "                     [--control PATH]\n"
		   "Request statistics of running 'aioloop serve' and attach daemons: per\n"
		   "export or device and operation, requests, bytes, errors, in flight and\n"
		   "latency percentiles (µs), read from their control sockets\n"
		   "(" CLI_RUN_DIR "/*.ctl).\n\n"
		   "  NAME|DEV          only the export NAME, or the device DEV (/dev/ublkb0)\n"
		   "  -J, --json        JSON: since start and since the previous reading\n"
		   "  -w, --watch SECS  every SECS seconds, the rates of the interval (like "
		   "iostat -x)\n"
		   "  -c, --count N     with --watch: stop after N reports\n"
		   "      --control PATH  this control socket only\n");
}

int stats_parse_args(int argc, char **argv, struct stats_config *cfg, struct cli_err *err)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'J'},	     {"watch", required_argument, NULL, 'w'},
	    {"count", required_argument, NULL, 'c'}, {"control", required_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},	     {0}};
	int c;

	memset(cfg, 0, sizeof(*cfg));
	err->msg[0] = '\0';
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":Jw:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'J':
			cfg->json = true;
			break;
		case 'w':
			if (cli_parse_seconds("--watch", optarg, 86400, &cfg->watch, err) < 0)
				return -EINVAL;
			break;
		case 'c':
			if (cli_parse_uint32("--count", optarg, 1, UINT32_MAX, &cfg->count, err) <
			    0)
				return -EINVAL;
			break;
		case 'C':
			cfg->control = optarg;
			break;
		case 'h':
			return CLI_HELP;
		case ':':
			snprintf(err->msg, sizeof(err->msg), "option '%s' needs a value",
				 argv[optind - 1]);
			return -EINVAL;
		default:
			snprintf(err->msg, sizeof(err->msg), "unknown option '%s'",
				 argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (argc - optind > 1) {
		snprintf(err->msg, sizeof(err->msg), "one NAME or DEV at most");
		return -EINVAL;
	}
	if (optind < argc)
		cfg->name = argv[optind];
	if (cfg->count && !cfg->watch) {
		snprintf(err->msg, sizeof(err->msg), "--count goes with --watch");
		return -EINVAL;
	}
	if (cfg->json && cfg->watch) {
		snprintf(err->msg, sizeof(err->msg), "--json and --watch exclude each other");
		return -EINVAL;
	}
	return CLI_RUN;
}

/* Ask the control socket at path for a dump; parse it into *p.  Returns 0
 * or -errno (-ECONNREFUSED: a stale socket). */
static int fetch(const char *path, struct cli_proc_stats *p)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, ret;

	memset(p, 0, sizeof(*p));
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	snprintf(p->ctl, sizeof(p->ctl), "%s", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send(fd, "dump\n", 5, MSG_NOSIGNAL) != 5) {
		ret = -errno;
		goto out;
	}
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (len + 65536 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 262144;
			nb = cap <= DUMP_MAX ? realloc(buf, cap) : NULL;
			if (!nb) {
				ret = -EFBIG;
				goto out;
			}
			buf = nb;
		}
		if (poll(&pfd, 1, ANSWER_TIMEOUT_MS) <= 0) {
			ret = -ETIMEDOUT;
			goto out;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	ret = stats_dump_parse(buf, &p->pid, &p->s);
	if (ret >= 0) {
		p->n = ret;
		ret = 0;
	}
out:
	free(buf);
	close(fd);
	return ret;
}

static bool matches(const struct stats_snap *s, const char *name)
{
	const char *base;

	if (!name || !strcmp(s->name, name) || (s->device[0] && !strcmp(s->device, name)))
		return true;
	base = strrchr(s->device, '/');
	return base && !strcmp(base + 1, name);
}

/* Every process's dump (the one --control names, or every *.ctl socket of
 * CLI_RUN_DIR that answers), keeping only the snaps that match.  Returns
 * the number of processes (*out malloc'd) or -errno. */
int cli_stats_fetch_all(const char *control, const char *name, struct cli_proc_stats **out)
{
	struct cli_proc_stats *ps = NULL;
	int n = 0, ret;
	DIR *d = NULL;
	struct dirent *e;
	char path[108];

	*out = NULL;
	if (!control)
		d = opendir(CLI_RUN_DIR);
	for (;;) {
		struct cli_proc_stats p, *np;
		int keep = 0;

		if (control) {
			if (n)
				break;
			snprintf(path, sizeof(path), "%s", control);
		} else {
			e = d ? readdir(d) : NULL;
			if (!e)
				break;
			if (strlen(e->d_name) < 5 ||
			    strcmp(e->d_name + strlen(e->d_name) - 4, ".ctl") ||
			    strlen(e->d_name) + sizeof(CLI_RUN_DIR) + 1 > sizeof(path))
				continue;
			snprintf(path, sizeof(path), CLI_RUN_DIR "/%s", e->d_name);
		}
		ret = fetch(path, &p);
		if (ret < 0) {
			if (control) {
				fprintf(stderr, "aioloop stats: %s: %s\n", path, strerror(-ret));
				free(ps);
				return ret;
			}
			continue; /* a stale socket of a process gone */
		}
		for (int i = 0; i < p.n; i++) {
			if (matches(&p.s[i], name)) {
				if (keep != i) {
					stats_snap_free(&p.s[keep]);
					p.s[keep] = p.s[i];
					p.s[i].conns = NULL;
					p.s[i].nconns = 0;
				}
				keep++;
			}
		}
		for (int i = keep; i < p.n; i++)
			stats_snap_free(&p.s[i]);
		p.n = keep;
		np = realloc(ps, sizeof(*ps) * (size_t)(n + 1));
		if (!np) {
			cli_stats_free(p.s, (unsigned int)p.n);
			break;
		}
		ps = np;
		ps[n++] = p;
	}
	if (d)
		closedir(d);
	*out = ps;
	return n;
}

void cli_stats_free_all(struct cli_proc_stats *ps, int n)
{
	for (int i = 0; i < n; i++)
		cli_stats_free(ps[i].s, (unsigned int)ps[i].n);
	free(ps);
}

static double us(uint64_t ns)
{
	return (double)ns / 1e3;
}

static void print_table(const struct cli_proc_stats *ps, int n)
{
	for (int p = 0; p < n; p++)
		for (int i = 0; i < ps[p].n; i++) {
			const struct stats_snap *s = &ps[p].s[i];

			printf("%s '%s' (%s): %s, pid %ld, up %.1f s, %u connection%s\n",
			       s->device[0] ? "device" : "export",
			       s->device[0] ? s->device : s->name, s->kind, s->path, ps[p].pid,
			       s->uptime_s, s->nconns, s->nconns == 1 ? "" : "s");
			printf("  %-12s %12s %12s %8s %6s %10s %10s %10s %10s %10s %10s\n", "OP",
			       "REQUESTS", "MIB", "ERRORS", "INFL", "MEAN_US", "P50_US", "P90_US",
			       "P99_US", "P99.9_US", "MAX_US");
			for (int o = 0; o < STATS_NOPS; o++) {
				const struct stats_op_counters *c = &s->total.op[o];

				if (!c->started)
					continue;
				printf("  %-12s %12" PRIu64 " %12.1f %8" PRIu64 " %6" PRIu64
				       " %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f\n",
				       stats_op_names[o], c->done, (double)c->bytes / 1048576.0,
				       c->errors, stats_inflight(c),
				       c->done ? us(c->lat_sum_ns) / (double)c->done : 0.0,
				       us(stats_quantile_ns(c, 0.5)), us(stats_quantile_ns(c, 0.9)),
				       us(stats_quantile_ns(c, 0.99)),
				       us(stats_quantile_ns(c, 0.999)), us(c->lat_max_ns));
			}
			for (unsigned int k = 0; k < s->nconns; k++) {
				const struct stats_shard *t = &s->conns[k].total;
				uint64_t req = 0, err = 0, infl = 0;

				for (int o = 0; o < STATS_NOPS; o++) {
					req += t->op[o].done;
					err += t->op[o].errors;
					infl += stats_inflight(&t->op[o]);
				}
				printf("  connection %-24s %12" PRIu64 " requests %8" PRIu64
				       " errors %6" PRIu64 " in flight\n",
				       s->conns[k].label, req, err, infl);
			}
		}
}

/* One iostat -x line of export s over an interval of secs (d: the
 * interval's counters). */
static void print_rates(const struct stats_snap *s, const struct stats_shard *d, double secs,
			const struct stats_shard *now)
{
	const struct stats_op_counters *r = &d->op[STATS_READ], *w = &d->op[STATS_WRITE];
	uint64_t infl = 0, errs = 0, other = 0;

	for (int o = 0; o < STATS_NOPS; o++) {
		infl += stats_inflight(&now->op[o]);
		errs += d->op[o].errors;
		if (o != STATS_READ && o != STATS_WRITE)
			other += d->op[o].done;
	}
	printf("%-16.16s %9.1f %8.2f %8.1f %8.1f %9.1f %8.2f %8.1f %8.1f %8.1f %6" PRIu64
	       " %6.1f\n",
	       s->device[0] ? s->device
	       : s->name[0] ? s->name
			    : "''",
	       (double)r->done / secs, (double)r->bytes / 1048576.0 / secs,
	       r->done ? us(r->lat_sum_ns) / (double)r->done : 0.0, us(stats_quantile_ns(r, 0.99)),
	       (double)w->done / secs, (double)w->bytes / 1048576.0 / secs,
	       w->done ? us(w->lat_sum_ns) / (double)w->done : 0.0, us(stats_quantile_ns(w, 0.99)),
	       (double)other / secs, infl, (double)errs / secs);
}

static volatile sig_atomic_t watch_stop;

static void on_sigint(int sig)
{
	(void)sig;
	watch_stop = 1;
}

/* The snapshot of export name in pid, from an earlier round. */
static const struct stats_snap *find_prev(const struct cli_proc_stats *ps, int n, long pid,
					  const char *name)
{
	for (int p = 0; p < n; p++)
		if (ps[p].pid == pid)
			for (int i = 0; i < ps[p].n; i++)
				if (!strcmp(ps[p].s[i].name, name))
					return &ps[p].s[i];
	return NULL;
}

static int watch(const struct stats_config *cfg)
{
	struct cli_proc_stats *prev = NULL, *cur;
	int nprev = 0, ncur;
	struct timespec ts = {.tv_sec = (time_t)cfg->watch,
			      .tv_nsec = (long)((cfg->watch - (double)(time_t)cfg->watch) * 1e9)};
	static struct stats_shard d;

	signal(SIGINT, on_sigint);
	signal(SIGTERM, on_sigint);
	for (unsigned int round = 0; !watch_stop && (!cfg->count || round <= cfg->count); round++) {
		ncur = cli_stats_fetch_all(cfg->control, cfg->name, &cur);
		if (ncur < 0)
			return 1;
		if (round > 0) {
			time_t now = time(NULL);
			char when[32];

			strftime(when, sizeof(when), "%F %T", localtime(&now));
			printf("\n%s\n%-16s %9s %8s %8s %8s %9s %8s %8s %8s %8s %6s %6s\n", when,
			       "EXPORT", "r/s", "rMiB/s", "r_await", "r_p99", "w/s", "wMiB/s",
			       "w_await", "w_p99", "other/s", "infl", "err/s");
			for (int p = 0; p < ncur; p++)
				for (int i = 0; i < cur[p].n; i++) {
					const struct stats_snap *s = &cur[p].s[i];
					const struct stats_snap *o =
					    find_prev(prev, nprev, cur[p].pid, s->name);
					double secs = o ? s->uptime_s - o->uptime_s : s->uptime_s;

					if (secs <= 0)
						secs = cfg->watch;
					if (o)
						stats_shard_diff(&d, &s->total, &o->total);
					else
						d = s->total;
					print_rates(s, &d, secs, &s->total);
				}
			fflush(stdout);
		}
		cli_stats_free_all(prev, nprev);
		prev = cur;
		nprev = ncur;
		if (!cfg->count || round < cfg->count)
			nanosleep(&ts, NULL);
	}
	cli_stats_free_all(prev, nprev);
	return 0;
}

int cmd_stats(int argc, char **argv)
{
	struct stats_config cfg;
	struct cli_err err;
	struct cli_proc_stats *ps;
	int ret, n, shown = 0;

	ret = stats_parse_args(argc, argv, &cfg, &err);
	if (ret < 0) {
		fprintf(stderr, "aioloop stats: %s (see 'aioloop stats --help')\n", err.msg);
		return EXIT_USAGE;
	}
	if (ret == CLI_HELP) {
		stats_usage(stdout);
		return 0;
	}
	if (cfg.watch)
		return watch(&cfg);
	n = cli_stats_fetch_all(cfg.control, cfg.name, &ps);
	if (n < 0)
		return 1;
	for (int p = 0; p < n; p++)
		shown += ps[p].n;
	if (!n && !cfg.name && !cfg.json)
		fprintf(stderr,
			"aioloop stats: no running server or device answers in " CLI_RUN_DIR "\n");
	if (cfg.json) {
		printf("{\"processes\": [");
		for (int p = 0; p < n; p++) {
			printf("%s\n", p ? "," : "");
			stats_json(stdout, ps[p].pid, ps[p].s, (unsigned int)ps[p].n);
		}
		printf("]}\n");
	} else {
		print_table(ps, n);
	}
	cli_stats_free_all(ps, n);
	if (!shown && cfg.name) {
		fprintf(stderr, "aioloop stats: no export or device '%s' is served\n", cfg.name);
		return 1;
	}
	return 0;
}
