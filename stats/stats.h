/* SPDX-License-Identifier: MIT */
/*
 * Request statistics: per export (or device), per operation and per NBD
 * connection, always on.  For each operation type: requests started and
 * completed (their difference is what is in flight), bytes, errors by
 * errno, and a log-linear latency histogram (8 buckets per power of two of
 * nanoseconds, 12.5 % wide) giving percentiles and the exact maximum.
 *
 * Writers and readers.  A shard (struct stats_shard) has one writer, the
 * event-loop thread that owns it (an NBD connection, a ublk queue): it
 * updates its counters with relaxed atomic loads and stores, no locked
 * instruction, no lock, no shared cache line.  Readers (the control socket,
 * the metrics endpoint) sum the shards of an export (struct stats_export)
 * under the export's mutex, which writers never take on the data path: only
 * when a shard joins or leaves the export (a connection opens or closes;
 * a closing connection's counters are folded into the export's "retired"
 * totals, so that nothing is lost).  A read is thus a consistent sum of
 * per-counter snapshots, never a torn 64-bit value.
 *
 * The encoders (JSON, Prometheus/OpenMetrics text, the control socket's dump
 * and its decoder) are pure functions of snapshots, unit-tested.
 */
#ifndef AIOLOOP_STATS_H
#define AIOLOOP_STATS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

enum stats_op {
	STATS_READ = 0,
	STATS_WRITE,
	STATS_FLUSH,
	STATS_TRIM,
	STATS_ZEROES,
	STATS_BLOCK_STATUS,
	STATS_CACHE,
	STATS_NOPS,
};

/* Histogram: values v < 8 ns have bucket v; above, 8 buckets per power of
 * two; values from 2^40 ns (18 minutes) on share the last bucket. */
#define STATS_SUB_BITS 3
#define STATS_SUB (1u << STATS_SUB_BITS)
#define STATS_MAX_EXP 40
#define STATS_NBUCKETS ((STATS_MAX_EXP - STATS_SUB_BITS + 1) * STATS_SUB)
/* errno values counted one by one; larger ones count under 0 ("other"). */
#define STATS_NERRNO 134

struct stats_op_counters {
	uint64_t started;
	uint64_t done;	/* completed, successfully or not */
	uint64_t bytes; /* of successful requests */
	uint64_t errors;
	uint64_t lat_sum_ns;
	uint64_t lat_max_ns;
	uint64_t err[STATS_NERRNO];
	uint64_t hist[STATS_NBUCKETS];
};

/* Counters of one writer; also used, plain, as a snapshot of sums. */
struct stats_shard {
	struct stats_op_counters op[STATS_NOPS];
	/* export membership, under the export's lock */
	struct stats_shard *next, *prev;
	char label[64]; /* "#3 127.0.0.1:40312": shown for connections */
	bool listed;	/* shown on its own (an NBD connection) */
};

/* One export or device: the shards of its writers and the totals of those
 * gone.  Initialised by stats_export_init; lives as long as its writers. */
struct stats_export {
	pthread_mutex_t lock;
	struct stats_shard *shards; /* live writers */
	struct stats_shard retired; /* sums of the writers that left */
	struct stats_shard last;    /* the sums at the previous read */
	uint64_t start_ns, last_ns; /* CLOCK_MONOTONIC */
};

extern const char *const stats_op_names[STATS_NOPS]; /* "read", ..., "block_status" */

static inline uint64_t stats_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The one writer's increment: a plain load and store, atomic so readers
 * never see a torn value. */
static inline void stats_add(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static inline uint64_t stats_load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* The histogram bucket of a latency in ns. */
static inline unsigned int stats_bucket(uint64_t ns)
{
	unsigned int e;

	if (ns < STATS_SUB)
		return (unsigned int)ns;
	e = 63u - (unsigned int)__builtin_clzll(ns);
	if (e >= STATS_MAX_EXP)
		return STATS_NBUCKETS - 1;
	return (e - STATS_SUB_BITS + 1) * STATS_SUB +
	       (unsigned int)((ns >> (e - STATS_SUB_BITS)) & (STATS_SUB - 1));
}

/* Lowest value of bucket b, and the lowest of the next one (its bound). */
uint64_t stats_bucket_low(unsigned int b);
uint64_t stats_bucket_high(unsigned int b);

/* Data path, owner thread only: a request of type op starts, and ends
 * with res (>= 0 success, else -errno) after lat_ns, having moved bytes. */
static inline void stats_start(struct stats_shard *s, enum stats_op op)
{
	stats_add(&s->op[op].started, 1);
}

static inline void stats_done(struct stats_shard *s, enum stats_op op, int res, uint64_t bytes,
			      uint64_t lat_ns)
{
	struct stats_op_counters *c = &s->op[op];

	stats_add(&c->done, 1);
	if (res < 0) {
		stats_add(&c->errors, 1);
		stats_add(&c->err[-res < STATS_NERRNO ? -res : 0], 1);
	} else {
		stats_add(&c->bytes, bytes);
	}
	stats_add(&c->lat_sum_ns, lat_ns);
	if (lat_ns > stats_load(&c->lat_max_ns))
		__atomic_store_n(&c->lat_max_ns, lat_ns, __ATOMIC_RELAXED);
	stats_add(&c->hist[stats_bucket(lat_ns)], 1);
}

/* ---- exports (control path) ---- */

void stats_export_init(struct stats_export *e);
void stats_export_destroy(struct stats_export *e);
/* A writer joins (s zeroed here; listed: a connection, shown on its own
 * under label) or leaves (its counters folded into the retired totals).
 * From any thread; the writer must not run during either call. */
void stats_shard_attach(struct stats_export *e, struct stats_shard *s, bool listed,
			const char *label);
void stats_shard_detach(struct stats_export *e, struct stats_shard *s);

/* A reading of an export: sums since start and since the previous read. */
struct stats_conn_snap {
	char label[64];
	struct stats_shard total;
};

struct stats_snap {
	char name[256];	   /* export name or device */
	char kind[16];	   /* "nbd", "ublk" */
	char path[512];	   /* backing file */
	char device[64];   /* /dev/ublkb0, or "" */
	double uptime_s;   /* since the export started */
	double interval_s; /* since the previous read */
	struct stats_shard total, interval;
	unsigned int nconns;
	struct stats_conn_snap *conns; /* malloc'd, nconns */
};

/* Read e into *out (name, kind, path, device left to the caller).  With
 * mark, the reading becomes the "previous read" of the next one.  Returns
 * 0 or -ENOMEM (connections not listed then). */
int stats_export_read(struct stats_export *e, struct stats_snap *out, bool mark);
void stats_snap_free(struct stats_snap *s);

/* ---- arithmetic on snapshots (pure) ---- */

void stats_shard_zero(struct stats_shard *s);
/* *dst += a relaxed reading of src's counters. */
void stats_shard_sum(struct stats_shard *dst, const struct stats_shard *src);
/* *dst = a - b (counter by counter; the max is a's). */
void stats_shard_diff(struct stats_shard *dst, const struct stats_shard *a,
		      const struct stats_shard *b);
/* The q-quantile (0 < q <= 1) of op's latency in ns: the upper bound of the
 * bucket it falls in, never above the maximum seen; 0 when no request. */
uint64_t stats_quantile_ns(const struct stats_op_counters *c, double q);
/* Requests started and not completed. */
uint64_t stats_inflight(const struct stats_op_counters *c);

/* ---- encoders (pure) ---- */

/* JSON: {"pid": P, "exports": [ {name, kind, path, device, uptime_s,
 * interval_s, "total": OPS, "since_last_read": OPS, "connections": [...]}
 * ]}, OPS being {"read": {"ops", "bytes", "errors", "errno": {"EIO": n},
 * "in_flight", "latency_us": {"mean", "p50", "p90", "p99", "p99.9",
 * "max"}}, ...}. */
void stats_json(FILE *f, long pid, const struct stats_snap *s, unsigned int n);
/* Prometheus text format 0.0.4, or OpenMetrics 1.0 text (openmetrics):
 * aioloop_requests_total{export,op}, aioloop_request_bytes_total,
 * aioloop_request_errors_total{export,op,errno}, aioloop_requests_in_flight,
 * aioloop_request_duration_seconds (histogram), aioloop_connections. */
void stats_prometheus(FILE *f, const struct stats_snap *s, unsigned int n, bool openmetrics);

/* The control socket's dump: a line-oriented text form of snapshots,
 * complete (histograms included) so that the client computes what it
 * shows.  stats_dump_parse reads it back: returns the number of snapshots
 * (*out malloc'd, each to stats_snap_free, then free(*out)) or -EINVAL /
 * -ENOMEM. */
void stats_dump(FILE *f, long pid, const struct stats_snap *s, unsigned int n);
int stats_dump_parse(const char *text, long *pid, struct stats_snap **out);

#endif
