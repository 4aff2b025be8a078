// SPDX-License-Identifier: MIT
/*
 * Request statistics: histogram buckets, exports and their shards, and the
 * arithmetic of snapshots (see stats.h for the thread model: one writer
 * per shard, readers under the export's mutex).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

const char *const stats_op_names[STATS_NOPS] = {
    [STATS_READ] = "read",   [STATS_WRITE] = "write",	[STATS_FLUSH] = "flush",
    [STATS_TRIM] = "trim",   [STATS_ZEROES] = "zeroes", [STATS_BLOCK_STATUS] = "block_status",
    [STATS_CACHE] = "cache",
};

uint64_t stats_bucket_low(unsigned int b)
{
	unsigned int e, m;

	if (b < STATS_SUB)
		return b;
	e = b / STATS_SUB + STATS_SUB_BITS - 1;
	m = b % STATS_SUB;
	return (uint64_t)(STATS_SUB + m) << (e - STATS_SUB_BITS);
}

uint64_t stats_bucket_high(unsigned int b)
{
	if (b + 1 >= STATS_NBUCKETS)
		return UINT64_MAX;
	return stats_bucket_low(b + 1);
}

void stats_shard_zero(struct stats_shard *s)
{
	memset(s, 0, sizeof(*s));
}

void stats_shard_sum(struct stats_shard *dst, const struct stats_shard *src)
{
	for (unsigned int o = 0; o < STATS_NOPS; o++) {
		struct stats_op_counters *d = &dst->op[o];
		const struct stats_op_counters *c = &src->op[o];
		uint64_t max = stats_load(&c->lat_max_ns);

		/* done before started: a request seen done is seen started */
		d->done += stats_load(&c->done);
		d->started += stats_load(&c->started);
		d->bytes += stats_load(&c->bytes);
		d->errors += stats_load(&c->errors);
		d->lat_sum_ns += stats_load(&c->lat_sum_ns);
		if (max > d->lat_max_ns)
			d->lat_max_ns = max;
		for (unsigned int i = 0; i < STATS_NERRNO; i++)
			d->err[i] += stats_load(&c->err[i]);
		for (unsigned int i = 0; i < STATS_NBUCKETS; i++)
			d->hist[i] += stats_load(&c->hist[i]);
	}
}

void stats_shard_diff(struct stats_shard *dst, const struct stats_shard *a,
		      const struct stats_shard *b)
{
	stats_shard_zero(dst);
	for (unsigned int o = 0; o < STATS_NOPS; o++) {
		struct stats_op_counters *d = &dst->op[o];
		const struct stats_op_counters *x = &a->op[o], *y = &b->op[o];

		d->started = x->started - y->started;
		d->done = x->done - y->done;
		d->bytes = x->bytes - y->bytes;
		d->errors = x->errors - y->errors;
		d->lat_sum_ns = x->lat_sum_ns - y->lat_sum_ns;
		for (unsigned int i = 0; i < STATS_NERRNO; i++)
			d->err[i] = x->err[i] - y->err[i];
		for (unsigned int i = 0; i < STATS_NBUCKETS; i++) {
			d->hist[i] = x->hist[i] - y->hist[i];
			/* the interval's max: its highest bucket, bounded by the
			 * all-time max */
			if (d->hist[i])
				d->lat_max_ns = stats_bucket_high(i) - 1 < x->lat_max_ns
						    ? stats_bucket_high(i) - 1
						    : x->lat_max_ns;
		}
	}
}

uint64_t stats_quantile_ns(const struct stats_op_counters *c, double q)
{
	uint64_t n = 0, want, seen = 0;

	for (unsigned int i = 0; i < STATS_NBUCKETS; i++)
		n += c->hist[i];
	if (!n)
		return 0;
	want = (uint64_t)(q * (double)n + 0.999999);
	if (want < 1)
		want = 1;
	if (want > n)
		want = n;
	for (unsigned int i = 0; i < STATS_NBUCKETS; i++) {
		seen += c->hist[i];
		if (seen >= want) {
			uint64_t hi = stats_bucket_high(i) - 1;

			return c->lat_max_ns && hi > c->lat_max_ns ? c->lat_max_ns : hi;
		}
	}
	return c->lat_max_ns;
}

uint64_t stats_inflight(const struct stats_op_counters *c)
{
	return c->started > c->done ? c->started - c->done : 0;
}

void stats_export_init(struct stats_export *e)
{
	memset(e, 0, sizeof(*e));
	pthread_mutex_init(&e->lock, NULL);
	e->start_ns = e->last_ns = stats_now_ns();
}

void stats_export_destroy(struct stats_export *e)
{
	pthread_mutex_destroy(&e->lock);
}

void stats_shard_attach(struct stats_export *e, struct stats_shard *s, bool listed,
			const char *label)
{
	stats_shard_zero(s);
	s->listed = listed;
	snprintf(s->label, sizeof(s->label), "%s", label ? label : "");
	pthread_mutex_lock(&e->lock);
	s->next = e->shards;
	if (e->shards)
		e->shards->prev = s;
	e->shards = s;
	pthread_mutex_unlock(&e->lock);
}

void stats_shard_detach(struct stats_export *e, struct stats_shard *s)
{
	pthread_mutex_lock(&e->lock);
	stats_shard_sum(&e->retired, s);
	if (s->prev)
		s->prev->next = s->next;
	else
		e->shards = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	pthread_mutex_unlock(&e->lock);
}

int stats_export_read(struct stats_export *e, struct stats_snap *out, bool mark)
{
	uint64_t now = stats_now_ns();
	unsigned int n = 0;
	int ret = 0;

	out->nconns = 0;
	out->conns = NULL;
	stats_shard_zero(&out->total);
	pthread_mutex_lock(&e->lock);
	stats_shard_sum(&out->total, &e->retired);
	for (struct stats_shard *s = e->shards; s; s = s->next) {
		stats_shard_sum(&out->total, s);
		n += s->listed;
	}
	if (n) {
		out->conns = calloc(n, sizeof(*out->conns));
		if (!out->conns)
			ret = -ENOMEM;
	}
	for (struct stats_shard *s = e->shards; s && out->conns; s = s->next) {
		struct stats_conn_snap *c;

		if (!s->listed)
			continue;
		c = &out->conns[out->nconns++];
		snprintf(c->label, sizeof(c->label), "%s", s->label);
		stats_shard_sum(&c->total, s);
	}
	stats_shard_diff(&out->interval, &out->total, &e->last);
	out->uptime_s = (double)(now - e->start_ns) / 1e9;
	out->interval_s = (double)(now - e->last_ns) / 1e9;
	if (mark) {
		e->last = out->total;
		e->last_ns = now;
	}
	pthread_mutex_unlock(&e->lock);
	return ret;
}

void stats_snap_free(struct stats_snap *s)
{
	free(s->conns);
	s->conns = NULL;
	s->nconns = 0;
}
