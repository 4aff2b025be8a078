// SPDX-License-Identifier: MIT
/*
 * What the statistics look like outside the process: JSON for people and
 * scripts, the Prometheus / OpenMetrics text format for scrapers, and the
 * control socket's dump (lines of counters and histogram buckets, read back
 * by stats_dump_parse in the client).  Pure: snapshots in, text out.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

static const char *errno_name(unsigned int e)
{
	const char *n = e ? strerrorname_np((int)e) : NULL;

	return n ? n : "other";
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_ops(FILE *f, const struct stats_shard *s)
{
	fputc('{', f);
	for (unsigned int o = 0; o < STATS_NOPS; o++) {
		const struct stats_op_counters *c = &s->op[o];
		bool first = true;

		fprintf(f,
			"%s\"%s\": {\"ops\": %" PRIu64 ", \"bytes\": %" PRIu64
			", \"errors\": %" PRIu64 ", \"errno\": {",
			o ? ", " : "", stats_op_names[o], c->done, c->bytes, c->errors);
		for (unsigned int e = 0; e < STATS_NERRNO; e++) {
			if (!c->err[e])
				continue;
			fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ", errno_name(e),
				c->err[e]);
			first = false;
		}
		fprintf(f,
			"}, \"in_flight\": %" PRIu64 ", \"latency_us\": {\"mean\": %.3f, "
			"\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p99.9\": %.3f, "
			"\"max\": %.3f}}",
			stats_inflight(c),
			c->done ? (double)c->lat_sum_ns / (double)c->done / 1e3 : 0.0,
			(double)stats_quantile_ns(c, 0.5) / 1e3,
			(double)stats_quantile_ns(c, 0.9) / 1e3,
			(double)stats_quantile_ns(c, 0.99) / 1e3,
			(double)stats_quantile_ns(c, 0.999) / 1e3, (double)c->lat_max_ns / 1e3);
	}
	fputc('}', f);
}

void stats_json(FILE *f, long pid, const struct stats_snap *s, unsigned int n)
{
	fprintf(f, "{\"pid\": %ld, \"exports\": [", pid);
	for (unsigned int i = 0; i < n; i++) {
		fprintf(f, "%s\n  {\"name\": ", i ? "," : "");
		json_str(f, s[i].name);
		fprintf(f, ", \"kind\": ");
		json_str(f, s[i].kind);
		fprintf(f, ", \"path\": ");
		json_str(f, s[i].path);
		fprintf(f, ", \"device\": ");
		json_str(f, s[i].device);
		fprintf(f, ", \"uptime_s\": %.3f, \"interval_s\": %.3f,\n   \"total\": ",
			s[i].uptime_s, s[i].interval_s);
		json_ops(f, &s[i].total);
		fprintf(f, ",\n   \"since_last_read\": ");
		json_ops(f, &s[i].interval);
		fprintf(f, ",\n   \"connections\": [");
		for (unsigned int c = 0; c < s[i].nconns; c++) {
			fprintf(f, "%s\n    {\"id\": ", c ? "," : "");
			json_str(f, s[i].conns[c].label);
			fprintf(f, ", \"total\": ");
			json_ops(f, &s[i].conns[c].total);
			fputc('}', f);
		}
		fprintf(f, "]}");
	}
	fprintf(f, "\n]}\n");
}

/* ---- Prometheus / OpenMetrics ---- */

static void prom_label(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void prom_head(FILE *f, const char *name, const char *type, const char *help, bool om)
{
	size_t len = strlen(name);

	/* OpenMetrics names a counter's family without its _total suffix. */
	if (om && !strcmp(type, "counter") && len > 6 && !strcmp(name + len - 6, "_total"))
		len -= 6;
	fprintf(f, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)len, name, help, (int)len, name, type);
}

static void prom_labels(FILE *f, const struct stats_snap *s, unsigned int op)
{
	fputs("{export=", f);
	prom_label(f, s->name);
	fprintf(f, ",op=\"%s\"", stats_op_names[op]);
}

/* Histogram bounds: every power of two of nanoseconds from 2^10 (1 µs) to
 * 2^35 (34 s); each is a bucket edge of the histogram. */
#define PROM_LE_MIN 10
#define PROM_LE_MAX 35

void stats_prometheus(FILE *f, const struct stats_snap *s, unsigned int n, bool om)
{
	prom_head(f, "aioloop_requests_total", "counter", "Requests completed.", om);
	for (unsigned int i = 0; i < n; i++)
		for (unsigned int o = 0; o < STATS_NOPS; o++) {
			fputs("aioloop_requests_total", f);
			prom_labels(f, &s[i], o);
			fprintf(f, "} %" PRIu64 "\n", s[i].total.op[o].done);
		}
	prom_head(f, "aioloop_request_bytes_total", "counter",
		  "Bytes of the requests completed successfully.", om);
	for (unsigned int i = 0; i < n; i++)
		for (unsigned int o = 0; o < STATS_NOPS; o++) {
			fputs("aioloop_request_bytes_total", f);
			prom_labels(f, &s[i], o);
			fprintf(f, "} %" PRIu64 "\n", s[i].total.op[o].bytes);
		}
	prom_head(f, "aioloop_request_errors_total", "counter",
		  "Requests completed with an error, by errno.", om);
	for (unsigned int i = 0; i < n; i++)
		for (unsigned int o = 0; o < STATS_NOPS; o++)
			for (unsigned int e = 0; e < STATS_NERRNO; e++) {
				if (!s[i].total.op[o].err[e])
					continue;
				fputs("aioloop_request_errors_total", f);
				prom_labels(f, &s[i], o);
				fprintf(f, ",errno=\"%s\"} %" PRIu64 "\n", errno_name(e),
					s[i].total.op[o].err[e]);
			}
	prom_head(f, "aioloop_requests_in_flight", "gauge", "Requests started, not completed.", om);
	for (unsigned int i = 0; i < n; i++)
		for (unsigned int o = 0; o < STATS_NOPS; o++) {
			fputs("aioloop_requests_in_flight", f);
			prom_labels(f, &s[i], o);
			fprintf(f, "} %" PRIu64 "\n", stats_inflight(&s[i].total.op[o]));
		}
	prom_head(f, "aioloop_request_duration_seconds", "histogram",
		  "Time from a request's start to its completion.", om);
	for (unsigned int i = 0; i < n; i++)
		for (unsigned int o = 0; o < STATS_NOPS; o++) {
			const struct stats_op_counters *c = &s[i].total.op[o];
			unsigned int b = 0;
			uint64_t cum = 0;

			for (unsigned int k = PROM_LE_MIN; k <= PROM_LE_MAX; k++) {
				/* buckets below 2^k ns */
				for (; stats_bucket_high(b) <= ((uint64_t)1 << k); b++)
					cum += c->hist[b];
				fputs("aioloop_request_duration_seconds_bucket", f);
				prom_labels(f, &s[i], o);
				fprintf(f, ",le=\"%.9g\"} %" PRIu64 "\n",
					(double)((uint64_t)1 << k) / 1e9, cum);
			}
			fputs("aioloop_request_duration_seconds_bucket", f);
			prom_labels(f, &s[i], o);
			fprintf(f, ",le=\"+Inf\"} %" PRIu64 "\n", c->done);
			fputs("aioloop_request_duration_seconds_sum", f);
			prom_labels(f, &s[i], o);
			fprintf(f, "} %.9f\n", (double)c->lat_sum_ns / 1e9);
			fputs("aioloop_request_duration_seconds_count", f);
			prom_labels(f, &s[i], o);
			fprintf(f, "} %" PRIu64 "\n", c->done);
		}
	prom_head(f, "aioloop_connections", "gauge", "NBD connections open.", om);
	for (unsigned int i = 0; i < n; i++) {
		fputs("aioloop_connections{export=", f);
		prom_label(f, s[i].name);
		fprintf(f, "} %u\n", s[i].nconns);
	}
	if (om)
		fputs("# EOF\n", f);
}

/* ---- the control socket's dump ---- */

/* A string field: '=' then the bytes, those that would split a line or a
 * field (and '%') as %XX. */
static void dump_str(FILE *f, const char *s)
{
	fputc('=', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c == '%' || c >= 0x7f)
			fprintf(f, "%%%02X", c);
		else
			fputc(c, f);
	}
}

static void dump_shard(FILE *f, const char *what, const char *label, const struct stats_shard *s)
{
	fprintf(f, "shard %s ", what);
	dump_str(f, label);
	fputc('\n', f);
	for (unsigned int o = 0; o < STATS_NOPS; o++) {
		const struct stats_op_counters *c = &s->op[o];

		fprintf(
		    f, "op %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
		    stats_op_names[o], c->started, c->done, c->bytes, c->errors, c->lat_sum_ns,
		    c->lat_max_ns);
		fputs("\nerr", f);
		for (unsigned int e = 0; e < STATS_NERRNO; e++)
			if (c->err[e])
				fprintf(f, " %u:%" PRIu64, e, c->err[e]);
		fputs("\nhist", f);
		for (unsigned int b = 0; b < STATS_NBUCKETS; b++)
			if (c->hist[b])
				fprintf(f, " %u:%" PRIu64, b, c->hist[b]);
		fputc('\n', f);
	}
}

void stats_dump(FILE *f, long pid, const struct stats_snap *s, unsigned int n)
{
	fprintf(f, "aioloop-stats 1 %ld %u\n", pid, n);
	for (unsigned int i = 0; i < n; i++) {
		fputs("export ", f);
		dump_str(f, s[i].name);
		fputc(' ', f);
		dump_str(f, s[i].kind);
		fputc(' ', f);
		dump_str(f, s[i].path);
		fputc(' ', f);
		dump_str(f, s[i].device);
		fprintf(f, " %.6f %.6f %u\n", s[i].uptime_s, s[i].interval_s, s[i].nconns);
		dump_shard(f, "total", "", &s[i].total);
		dump_shard(f, "interval", "", &s[i].interval);
		for (unsigned int c = 0; c < s[i].nconns; c++)
			dump_shard(f, "conn", s[i].conns[c].label, &s[i].conns[c].total);
	}
	fputs("end\n", f);
}

/* Undo dump_str into buf (len bytes); returns 0 or -EINVAL. */
static int undump_str(const char *tok, char *buf, size_t len)
{
	size_t n = 0;

	if (!tok || *tok++ != '=')
		return -EINVAL;
	for (; *tok; tok++) {
		unsigned int c = (unsigned char)*tok;

		if (c == '%') {
			if (sscanf(tok + 1, "%2X", &c) != 1 || !tok[1] || !tok[2])
				return -EINVAL;
			tok += 2;
		}
		if (n + 1 >= len)
			return -EINVAL;
		buf[n++] = (char)c;
	}
	buf[n] = '\0';
	return 0;
}

static int op_index(const char *name)
{
	for (int o = 0; name && o < STATS_NOPS; o++)
		if (!strcmp(name, stats_op_names[o]))
			return o;
	return -1;
}

/* "i:n" pairs of the rest of a line into arr (size max). */
static int undump_pairs(char **save, uint64_t *arr, unsigned int max)
{
	char *t;

	while ((t = strtok_r(NULL, " ", save))) {
		unsigned int i;
		uint64_t v;
		char end;

		if (sscanf(t, "%u:%" SCNu64 "%c", &i, &v, &end) != 2 || i >= max)
			return -EINVAL;
		arr[i] = v;
	}
	return 0;
}

int stats_dump_parse(const char *text, long *pid, struct stats_snap **out)
{
	char *copy = strdup(text), *line, *next, *save, *t;
	struct stats_snap *snaps = NULL, *cur = NULL;
	struct stats_shard *sh = NULL;
	unsigned int n = 0, got = 0, conns = 0;
	int o = -1, ret = -EINVAL;
	bool end = false;

	*out = NULL;
	if (!copy)
		return -ENOMEM;
	for (line = copy; line && !end; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		t = strtok_r(line, " ", &save);
		if (!t)
			goto bad;
		if (!strcmp(t, "aioloop-stats")) {
			if (snaps || sscanf(save, "1 %ld %u", pid, &n) != 2 || n > 4096)
				goto bad;
			snaps = calloc(n ? n : 1, sizeof(*snaps));
			if (!snaps) {
				ret = -ENOMEM;
				goto bad;
			}
		} else if (!strcmp(t, "export")) {
			if (!snaps || got >= n)
				goto bad;
			cur = &snaps[got++];
			if (undump_str(strtok_r(NULL, " ", &save), cur->name, sizeof(cur->name)) ||
			    undump_str(strtok_r(NULL, " ", &save), cur->kind, sizeof(cur->kind)) ||
			    undump_str(strtok_r(NULL, " ", &save), cur->path, sizeof(cur->path)) ||
			    undump_str(strtok_r(NULL, " ", &save), cur->device,
				       sizeof(cur->device)) ||
			    sscanf(save, "%lf %lf %u", &cur->uptime_s, &cur->interval_s, &conns) !=
				3 ||
			    conns > 65536)
				goto bad;
			if (conns) {
				cur->conns = calloc(conns, sizeof(*cur->conns));
				if (!cur->conns) {
					ret = -ENOMEM;
					goto bad;
				}
			}
			cur->nconns = 0;
			sh = NULL;
		} else if (!strcmp(t, "shard")) {
			char label[64];

			t = strtok_r(NULL, " ", &save);
			if (!cur || !t ||
			    undump_str(strtok_r(NULL, " ", &save), label, sizeof(label)))
				goto bad;
			if (!strcmp(t, "total")) {
				sh = &cur->total;
			} else if (!strcmp(t, "interval")) {
				sh = &cur->interval;
			} else if (!strcmp(t, "conn") && cur->nconns < conns) {
				snprintf(cur->conns[cur->nconns].label, sizeof(label), "%s", label);
				sh = &cur->conns[cur->nconns++].total;
			} else {
				goto bad;
			}
		} else if (!strcmp(t, "op")) {
			struct stats_op_counters *c;

			o = op_index(strtok_r(NULL, " ", &save));
			if (!sh || o < 0)
				goto bad;
			c = &sh->op[o];
			if (sscanf(save,
				   "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
				   " %" SCNu64,
				   &c->started, &c->done, &c->bytes, &c->errors, &c->lat_sum_ns,
				   &c->lat_max_ns) != 6)
				goto bad;
		} else if (!strcmp(t, "err")) {
			if (!sh || o < 0 || undump_pairs(&save, sh->op[o].err, STATS_NERRNO))
				goto bad;
		} else if (!strcmp(t, "hist")) {
			if (!sh || o < 0 || undump_pairs(&save, sh->op[o].hist, STATS_NBUCKETS))
				goto bad;
		} else if (!strcmp(t, "end")) {
			end = true;
		} else {
			goto bad;
		}
	}
	if (!end || !snaps || got != n)
		goto bad;
	free(copy);
	*out = snaps;
	return (int)n;
bad:
	for (unsigned int i = 0; snaps && i < got; i++)
		stats_snap_free(&snaps[i]);
	free(snaps);
	free(copy);
	return ret;
}
