// SPDX-License-Identifier: MIT
/*
 * Unit tests of the statistics library (stats/): the log-linear histogram's
 * buckets and quantiles, single-writer shards summed by a reader while
 * their writers run, a leaving shard's counters kept, "since the last
 * read", and the encoders: JSON, Prometheus/OpenMetrics text, and the
 * control socket's dump read back by its parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats.h"

static void test_buckets(void **state)
{
	unsigned int prev = 0;

	(void)state;
	/* Each value lies in its bucket; buckets rise with values; a bucket
	 * above 8 ns is at most 1/8 of its lower bound wide. */
	for (uint64_t v = 0; v < (1ull << 41); v = v < 64 ? v + 1 : v + v / 7 + 1) {
		unsigned int b = stats_bucket(v);

		assert_true(b < STATS_NBUCKETS);
		assert_true(b >= prev);
		prev = b;
		if (b == STATS_NBUCKETS - 1)
			continue;
		assert_true(stats_bucket_low(b) <= v);
		assert_true(v < stats_bucket_high(b));
		if (v >= 8)
			assert_true((stats_bucket_high(b) - stats_bucket_low(b)) * 8 <=
				    stats_bucket_low(b));
	}
	/* exact edges */
	assert_int_equal(stats_bucket(7), 7);
	assert_int_equal(stats_bucket(8), 8);
	assert_int_equal(stats_bucket(1024), stats_bucket(1151));
	assert_int_equal(stats_bucket(1152), stats_bucket(1024) + 1);
	assert_int_equal(stats_bucket(UINT64_MAX), STATS_NBUCKETS - 1);
	assert_true(stats_bucket_low(stats_bucket(1ull << 20)) == 1ull << 20);
}

static void test_quantiles(void **state)
{
	struct stats_shard s;

	(void)state;
	stats_shard_zero(&s);
	assert_true(stats_quantile_ns(&s.op[STATS_READ], 0.99) == 0);
	/* 1000 reads of 1..1000 µs */
	for (uint64_t i = 1; i <= 1000; i++) {
		stats_start(&s, STATS_READ);
		stats_done(&s, STATS_READ, 4096, 4096, i * 1000);
	}
	assert_true(s.op[STATS_READ].done == 1000);
	assert_true(s.op[STATS_READ].bytes == 4096000);
	assert_true(s.op[STATS_READ].lat_max_ns == 1000000);
	uint64_t p50 = stats_quantile_ns(&s.op[STATS_READ], 0.5);
	uint64_t p99 = stats_quantile_ns(&s.op[STATS_READ], 0.99);
	uint64_t p100 = stats_quantile_ns(&s.op[STATS_READ], 1.0);

	/* a bucket's upper bound: at or above the true value, within 1/8 */
	assert_true(p50 >= 500000 && p50 <= 500000 + 500000 / 8);
	assert_true(p99 >= 990000 && p99 <= 1000000);
	assert_true(p100 == 1000000); /* never above the max */
	/* errors by errno, and no bytes for them */
	stats_start(&s, STATS_WRITE);
	stats_done(&s, STATS_WRITE, -EIO, 4096, 10);
	stats_start(&s, STATS_WRITE);
	stats_done(&s, STATS_WRITE, -ENOSPC, 4096, 10);
	stats_start(&s, STATS_WRITE);
	stats_done(&s, STATS_WRITE, -5000, 4096, 10);
	assert_true(s.op[STATS_WRITE].errors == 3);
	assert_true(s.op[STATS_WRITE].err[EIO] == 1 && s.op[STATS_WRITE].err[ENOSPC] == 1);
	assert_true(s.op[STATS_WRITE].err[0] == 1);
	assert_true(s.op[STATS_WRITE].bytes == 0);
	stats_start(&s, STATS_FLUSH);
	assert_true(stats_inflight(&s.op[STATS_FLUSH]) == 1);
}

#define WRITERS 4
#define PER_WRITER 200000

struct writer {
	struct stats_export *e;
	struct stats_shard shard;
	unsigned int index;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	for (unsigned int i = 0; i < PER_WRITER; i++) {
		enum stats_op op = i % 3 == 0 ? STATS_WRITE : STATS_READ;

		stats_start(&w->shard, op);
		stats_done(&w->shard, op, 512, 512, 1000 + i % 5000);
	}
	return NULL;
}

/* Writers on their own shards, a reader summing all the while. */
static void test_merge_concurrent(void **state)
{
	static struct writer w[WRITERS];
	static struct stats_snap snap;
	struct stats_export e;
	pthread_t th[WRITERS];
	uint64_t last = 0;

	(void)state;
	stats_export_init(&e);
	for (unsigned int i = 0; i < WRITERS; i++) {
		char label[16];

		w[i].e = &e;
		snprintf(label, sizeof(label), "#%u", i);
		stats_shard_attach(&e, &w[i].shard, true, label);
	}
	for (unsigned int i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	for (int k = 0; k < 50; k++) {
		uint64_t done;

		assert_int_equal(stats_export_read(&e, &snap, false), 0);
		done = snap.total.op[STATS_READ].done + snap.total.op[STATS_WRITE].done;
		assert_true(done >= last); /* counters only grow */
		assert_true(snap.total.op[STATS_READ].started >= snap.total.op[STATS_READ].done);
		assert_int_equal(snap.nconns, WRITERS);
		last = done;
		stats_snap_free(&snap);
	}
	for (unsigned int i = 0; i < WRITERS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(stats_export_read(&e, &snap, true), 0);
	assert_true(snap.total.op[STATS_READ].done + snap.total.op[STATS_WRITE].done ==
		    (uint64_t)WRITERS * PER_WRITER);
	assert_true(snap.total.op[STATS_READ].bytes + snap.total.op[STATS_WRITE].bytes ==
		    (uint64_t)WRITERS * PER_WRITER * 512);
	assert_true(stats_inflight(&snap.total.op[STATS_READ]) == 0);
	stats_snap_free(&snap);

	/* A shard that leaves keeps its counts in the export... */
	stats_shard_detach(&e, &w[0].shard);
	assert_int_equal(stats_export_read(&e, &snap, false), 0);
	assert_int_equal(snap.nconns, WRITERS - 1);
	assert_true(snap.total.op[STATS_READ].done + snap.total.op[STATS_WRITE].done ==
		    (uint64_t)WRITERS * PER_WRITER);
	/* ... and nothing happened since the last (marked) read. */
	assert_true(snap.interval.op[STATS_READ].done == 0);
	stats_snap_free(&snap);

	/* since the last read: only what came after */
	stats_start(&w[1].shard, STATS_TRIM);
	stats_done(&w[1].shard, STATS_TRIM, 0, 1 << 20, 3000);
	assert_int_equal(stats_export_read(&e, &snap, true), 0);
	assert_true(snap.interval.op[STATS_TRIM].done == 1);
	assert_true(snap.interval.op[STATS_READ].done == 0);
	assert_true(snap.interval.op[STATS_TRIM].lat_max_ns == 3000);
	assert_true(snap.total.op[STATS_TRIM].bytes == 1 << 20);
	stats_snap_free(&snap);
	assert_int_equal(stats_export_read(&e, &snap, true), 0);
	assert_true(snap.interval.op[STATS_TRIM].done == 0);
	stats_snap_free(&snap);
	for (unsigned int i = 1; i < WRITERS; i++)
		stats_shard_detach(&e, &w[i].shard);
	stats_export_destroy(&e);
}

/* A snapshot with some of everything, named with characters to escape. */
static struct stats_snap *sample(void)
{
	struct stats_snap *s = calloc(1, sizeof(*s));

	snprintf(s->name, sizeof(s->name), "vm 1 \"%%\"");
	snprintf(s->kind, sizeof(s->kind), "nbd");
	snprintf(s->path, sizeof(s->path), "/srv/a b.img");
	s->uptime_s = 12.5;
	s->interval_s = 2.25;
	for (uint64_t i = 1; i <= 100; i++) {
		stats_start(&s->total, STATS_READ);
		stats_done(&s->total, STATS_READ, 0, 4096, i * 10000);
		stats_start(&s->total, STATS_WRITE);
		stats_done(&s->total, STATS_WRITE, i % 10 ? 0 : -EIO, 4096, i * 20000);
	}
	stats_start(&s->total, STATS_FLUSH);
	s->interval = s->total;
	s->nconns = 2;
	s->conns = calloc(2, sizeof(*s->conns));
	snprintf(s->conns[0].label, sizeof(s->conns[0].label), "#1 127.0.0.1:4000");
	s->conns[0].total = s->total;
	snprintf(s->conns[1].label, sizeof(s->conns[1].label), "#2 unix");
	return s;
}

static char *to_text(void (*fn)(FILE *, const struct stats_snap *, unsigned int, bool),
		     const struct stats_snap *s, bool om)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	fn(f, s, 1, om);
	fclose(f);
	return buf;
}

static void test_json(void **state)
{
	struct stats_snap *s = sample();
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	stats_json(f, 42, s, 1);
	fclose(f);
	assert_non_null(strstr(buf, "{\"pid\": 42, \"exports\": ["));
	assert_non_null(strstr(buf, "\"name\": \"vm 1 \\\"%\\\"\""));
	assert_non_null(strstr(buf, "\"read\": {\"ops\": 100, \"bytes\": 409600, \"errors\": 0"));
	assert_non_null(strstr(buf, "\"write\": {\"ops\": 100, \"bytes\": 368640, \"errors\": 10, "
				    "\"errno\": {\"EIO\": 10}"));
	assert_non_null(strstr(buf, "\"max\": 1000.000"));
	assert_non_null(strstr(buf, "\"flush\": {\"ops\": 0"));
	assert_non_null(strstr(buf, "\"in_flight\": 1"));
	assert_non_null(strstr(buf, "\"since_last_read\""));
	assert_non_null(strstr(buf, "{\"id\": \"#2 unix\""));
	free(buf);
	stats_snap_free(s);
	free(s);
}

static void test_prometheus(void **state)
{
	struct stats_snap *s = sample();
	char *text = to_text(stats_prometheus, s, false), *om = to_text(stats_prometheus, s, true);
	char *line, *save = NULL;
	uint64_t prev = 0, v;
	unsigned int nb = 0;

	(void)state;
	assert_non_null(strstr(text, "# TYPE aioloop_requests_total counter\n"));
	assert_non_null(
	    strstr(text, "aioloop_requests_total{export=\"vm 1 \\\"%\\\"\",op=\"read\"} 100\n"));
	assert_non_null(strstr(text, ",op=\"write\",errno=\"EIO\"} 10\n"));
	assert_non_null(strstr(text, "# TYPE aioloop_request_duration_seconds histogram\n"));
	assert_non_null(strstr(text, ",op=\"read\",le=\"+Inf\"} 100\n"));
	assert_non_null(strstr(text, "aioloop_requests_in_flight{export=\"vm 1 \\\"%\\\"\","
				     "op=\"flush\"} 1\n"));
	assert_non_null(strstr(text, "aioloop_connections{export=\"vm 1 \\\"%\\\"\"} 2\n"));
	assert_null(strstr(text, "# EOF"));
	/* the read buckets rise to the count; 1.024 ms holds 10..1000 µs */
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *p = strstr(line, ",op=\"read\",le=\"");

		if (!p || strncmp(line, "aioloop_request_duration_seconds_bucket", 39))
			continue;
		v = strtoull(strrchr(line, ' ') + 1, NULL, 10);
		assert_true(v >= prev);
		prev = v;
		if (strstr(p, "le=\"0.001048576\""))
			assert_true(v == 100);
		if (strstr(p, "le=\"1.6384e-05\""))
			assert_true(v == 1); /* 10 µs only */
		nb++;
	}
	assert_int_equal(nb, 27);
	/* OpenMetrics: counter families without _total, and # EOF */
	assert_non_null(strstr(om, "# TYPE aioloop_requests counter\n"));
	assert_non_null(strstr(om, "aioloop_requests_total{export="));
	assert_true(strlen(om) > 6 && !strcmp(om + strlen(om) - 6, "# EOF\n"));
	free(text);
	free(om);
	stats_snap_free(s);
	free(s);
}

static void test_dump_roundtrip(void **state)
{
	struct stats_snap *s = sample(), *back = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	long pid = 0;

	(void)state;
	stats_dump(f, 77, s, 1);
	fclose(f);
	assert_int_equal(stats_dump_parse(buf, &pid, &back), 1);
	assert_int_equal(pid, 77);
	assert_string_equal(back->name, s->name);
	assert_string_equal(back->path, s->path);
	assert_string_equal(back->kind, "nbd");
	assert_string_equal(back->device, "");
	assert_true(back->uptime_s == 12.5);
	assert_memory_equal(back->total.op, s->total.op, sizeof(s->total.op));
	assert_memory_equal(back->interval.op, s->interval.op, sizeof(s->interval.op));
	assert_int_equal(back->nconns, 2);
	assert_string_equal(back->conns[0].label, "#1 127.0.0.1:4000");
	assert_memory_equal(back->conns[0].total.op, s->total.op, sizeof(s->total.op));
	assert_string_equal(back->conns[1].label, "#2 unix");
	stats_snap_free(back);
	free(back);

	/* truncated, or junk: refused */
	buf[len / 2] = '\0';
	assert_int_equal(stats_dump_parse(buf, &pid, &back), -EINVAL);
	assert_int_equal(stats_dump_parse("aioloop-stats 1 1 1\nend\n", &pid, &back), -EINVAL);
	assert_int_equal(stats_dump_parse("aioloop-stats 1 1 0\nend\n", &pid, &back), 0);
	free(back);
	assert_int_equal(stats_dump_parse("aioloop-stats 1 1 0\nbogus\nend\n", &pid, &back),
			 -EINVAL);
	assert_int_equal(stats_dump_parse("", &pid, &back), -EINVAL);
	free(buf);
	stats_snap_free(s);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buckets),	     cmocka_unit_test(test_quantiles),
	    cmocka_unit_test(test_merge_concurrent), cmocka_unit_test(test_json),
	    cmocka_unit_test(test_prometheus),	     cmocka_unit_test(test_dump_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
