// SPDX-License-Identifier: MIT
/*
 * aioloop bench: measure the engine alone, without a frontend.  One thread
 * keeps --qd requests of --bs bytes in flight on one queue for --seconds
 * and reports IOPS, MiB/s, latency percentiles and CPU time per I/O.
 *
 * Latencies go into a log-linear histogram (64 linear sub-buckets per power
 * of two of nanoseconds, under 1.6% error), so memory does not grow with
 * the run.  CPU time is getrusage(RUSAGE_SELF): it includes the threads
 * backend's workers, not io_uring's kernel workers.
 *
 * Without FILE a demo image is written (fully, not sparse) in a new
 * directory under $TMPDIR or /var/tmp and removed at exit.  Read workloads
 * open the file read-only; write workloads overwrite it and say so.
 *
 * Thread model: everything runs on the calling thread; requests are
 * resubmitted from their done() callbacks.  SIGINT/SIGTERM only set a flag.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aioloop/engine.h"
#include "aioloop/log.h"
#include "aioloop/store.h"
#include "aioloop/loop.h"
#include "cli.h"

#define MAX_BS (64u << 20)
#define MAX_QD 4096u
#define MAX_INFLIGHT_BYTES (256ull << 20)
#define DEMO_SIZE (1ull << 30)

/* ---- latency histogram ---- */

#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
	uint64_t count[HIST_BUCKETS];
	uint64_t n, sum, max;
};

static unsigned int hist_index(uint64_t v)
{
	unsigned int msb, shift;

	if (v < HIST_SUB)
		return (unsigned int)v;
	msb = 63u - (unsigned int)__builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	return ((shift + 1) << HIST_SUB_BITS) | (unsigned int)((v >> shift) & (HIST_SUB - 1));
}

/* The middle of bucket i. */
static uint64_t hist_value(unsigned int i)
{
	unsigned int shift;

	if (i < HIST_SUB)
		return i;
	shift = (i >> HIST_SUB_BITS) - 1;
	return (((uint64_t)HIST_SUB | (i & (HIST_SUB - 1))) << shift) + ((1ull << shift) >> 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->count[hist_index(v)]++;
	h->n++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

/* The value below which a fraction p of the samples lie. */
static uint64_t hist_percentile(const struct hist *h, double p)
{
	double exact = p * (double)h->n;
	uint64_t want = (uint64_t)exact, seen = 0;

	if ((double)want < exact)
		want++;

	if (want == 0)
		want = 1;
	for (unsigned int i = 0; i < HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen >= want)
			return hist_value(i) < h->max ? hist_value(i) : h->max;
	}
	return h->max;
}

/* ---- options ---- */

static const char *const rw_names[] = { "randread", "randwrite", "read", "write" };

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: aioloop bench [OPTIONS] [FILE]\n"
		"\n"
		"Measure the engine alone on FILE: one thread keeps QD requests in flight\n"
		"and reports IOPS, MiB/s, p50/p99 latency and CPU time per I/O.\n"
		"Without FILE, a fully written demo image is created in a new directory\n"
		"under $TMPDIR (or /var/tmp) and removed at exit.\n"
		"\n"
		"Options:\n"
		"  --engine=E      uring (default), aio, threads or sync\n"
		"  --rw=MODE       randread (default), randwrite, read or write;\n"
		"                  the write modes overwrite FILE\n"
		"  --bs=SIZE       bytes per request (default 4k; K/M/G suffixes)\n"
		"  --qd=N          requests in flight (default 32, at most %u)\n"
		"  --seconds=S     how long to run (default 10)\n"
		"  --size=SIZE     bytes of FILE to use (default all); without FILE,\n"
		"                  the demo image's size (default 1G)\n"
		"  --direct=MODE   auto (default: O_DIRECT if the file takes it), on, off\n"
		"  --threads=N     pool size of the threads engine (default 4)\n"
		"  --submit-batch=N  submit to the ring as soon as N requests are\n"
		"                  ready (default 1, as fio does; 0: once per loop pass)\n"
		"  --json          print one JSON object instead of text\n"
		"Encryption (dm-crypt plain format):\n" CLI_CRYPT_USAGE
		"  -h, --help      this text\n"
		"\n"
		"Exit status: 0 done, 1 failed (file, I/O), 2 bad usage.\n",
		MAX_QD);
}

int bench_parse_args(int argc, char **argv, struct bench_opts *o, struct cli_err *err)
{
	static const struct option longopts[] = {
		{ "engine", required_argument, NULL, 'e' },
		{ "rw", required_argument, NULL, 'r' },
		{ "bs", required_argument, NULL, 'b' },
		{ "qd", required_argument, NULL, 'q' },
		{ "seconds", required_argument, NULL, 's' },
		{ "size", required_argument, NULL, 'S' },
		{ "direct", required_argument, NULL, 'd' },
		{ "threads", required_argument, NULL, 't' },
		{ "submit-batch", required_argument, NULL, 'B' },
		{ "json", no_argument, NULL, 'j' },
		CLI_CRYPT_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c;

	*o = (struct bench_opts){
		.engine = AIOL_ENGINE_URING,
		.rw = RW_RANDREAD,
		.bs = 4096,
		.qd = 32,
		.seconds = 10,
		.direct = AIOL_DIRECT_AUTO,
		.submit_batch = 1,
	};
	err->msg[0] = '\0';
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'e':
			if (aiol_engine_parse(optarg, &o->engine) < 0) {
				snprintf(err->msg, sizeof(err->msg),
					 "unknown engine '%s': use uring, aio, threads or sync",
					 optarg);
				return -EINVAL;
			}
			break;
		case 'r': {
			bool found = false;

			for (unsigned int i = 0; i < 4; i++) {
				if (!strcmp(optarg, rw_names[i])) {
					o->rw = (enum bench_rw)i;
					found = true;
				}
			}
			if (!found) {
				snprintf(err->msg, sizeof(err->msg),
					 "unknown --rw '%s': randread, randwrite, read or write",
					 optarg);
				return -EINVAL;
			}
			break;
		}
		case 'b':
			if (cli_parse_size("--bs", optarg, 1, MAX_BS, &o->bs, err) < 0)
				return -EINVAL;
			break;
		case 'q':
			if (cli_parse_uint32("--qd", optarg, 1, MAX_QD, &o->qd, err) < 0)
				return -EINVAL;
			break;
		case 's':
			if (cli_parse_seconds("--seconds", optarg, 86400, &o->seconds, err) < 0)
				return -EINVAL;
			break;
		case 'S':
			if (cli_parse_size("--size", optarg, 1, INT64_MAX, &o->size, err) < 0)
				return -EINVAL;
			break;
		case 'd':
			if (cli_parse_direct(optarg, &o->direct) < 0) {
				snprintf(err->msg, sizeof(err->msg),
					 "bad --direct '%s': use auto, on or off", optarg);
				return -EINVAL;
			}
			break;
		case 't':
			if (cli_parse_uint32("--threads", optarg, 1, 1024, &o->threads, err) < 0)
				return -EINVAL;
			break;
		case 'B':
			if (cli_parse_uint32("--submit-batch", optarg, 0, MAX_QD, &o->submit_batch,
					     err) < 0)
				return -EINVAL;
			break;
		case 'j':
			o->json = true;
			break;
		case CLI_OPT_ENCRYPT ... CLI_OPT_CRYPT_LAST:
			if (cli_crypt_opt(&o->crypt, c, optarg, err) < 0)
				return -EINVAL;
			break;
		case 'h':
			return CLI_HELP;
		default:
			if (optopt && optopt < 256)
				snprintf(err->msg, sizeof(err->msg),
					 "option '-%c' is unknown or lacks its value", optopt);
			else
				snprintf(err->msg, sizeof(err->msg),
					 "option '%s' is unknown or lacks its value",
					 argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (cli_crypt_finish(&o->crypt, err) < 0)
		return -EINVAL;
	if (argc - optind > 1) {
		snprintf(err->msg, sizeof(err->msg), "one FILE at most, got '%s' too",
			 argv[optind + 1]);
		return -EINVAL;
	}
	if (argc - optind == 1)
		o->file = argv[optind];
	if (o->bs * o->qd > MAX_INFLIGHT_BYTES) {
		snprintf(err->msg, sizeof(err->msg), "--bs times --qd is over 256M");
		return -EINVAL;
	}
	return CLI_RUN;
}

/* ---- signals ---- */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void signals_install(struct sigaction *old_int, struct sigaction *old_term)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: wake the ring wait */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, old_int);
	sigaction(SIGTERM, &sa, old_term);
}

/* ---- demo image ---- */

/* Data that does not compress or dedupe: one xorshift64 step. */
static uint64_t xorshift64(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

struct demo {
	char dir[PATH_MAX];
	char path[PATH_MAX + 16];
	bool have_dir, have_file;
};

static void demo_remove(struct demo *d)
{
	if (d->have_file)
		unlink(d->path);
	if (d->have_dir)
		rmdir(d->dir);
	d->have_file = d->have_dir = false;
}

/* Write a demo image of size bytes, fully (no holes) and with data that
 * does not compress; flushed to disk and dropped from the page cache.
 * Returns 0 or -errno (message printed; what was made is removed). */
static int demo_create(struct demo *d, uint64_t size)
{
	const char *tmp = getenv("TMPDIR");
	size_t chunk = 1u << 20;
	uint64_t *buf = NULL, x = 0x9e3779b97f4a7c15ull;
	int fd = -1, ret = 0;

	if (!tmp || !*tmp)
		tmp = "/var/tmp";
	snprintf(d->dir, sizeof(d->dir), "%s/aioloop-bench.XXXXXX", tmp);
	if (!mkdtemp(d->dir)) {
		ret = -errno;
		fprintf(stderr, "aioloop bench: cannot make a directory in %s: %s\n", tmp,
			strerror(errno));
		return ret;
	}
	d->have_dir = true;
	snprintf(d->path, sizeof(d->path), "%s/demo.img", d->dir);
	if (size >= (1ull << 30))
		fprintf(stderr, "aioloop bench: writing a %.2f GiB demo image %s (removed at exit)\n",
			(double)size / (1 << 30), d->path);
	else
		fprintf(stderr, "aioloop bench: writing a %.2f MiB demo image %s (removed at exit)\n",
			(double)size / (1 << 20), d->path);
	fd = open(d->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		fprintf(stderr, "aioloop bench: %s: %s\n", d->path, strerror(errno));
		goto err;
	}
	d->have_file = true;
	buf = malloc(chunk);
	if (!buf) {
		ret = -ENOMEM;
		fprintf(stderr, "aioloop bench: out of memory\n");
		goto err;
	}
	for (uint64_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? (size_t)(size - off) : chunk;

		if (interrupted) {
			ret = -EINTR;
			fprintf(stderr, "aioloop bench: interrupted\n");
			goto err;
		}
		for (size_t i = 0; i < chunk / 8; i++)
			buf[i] = xorshift64(&x);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			ret = errno ? -errno : -EIO;
			fprintf(stderr, "aioloop bench: writing %s: %s\n", d->path,
				strerror(-ret));
			goto err;
		}
	}
	if (fdatasync(fd) < 0) {
		ret = -errno;
		fprintf(stderr, "aioloop bench: fdatasync %s: %s\n", d->path, strerror(errno));
		goto err;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	free(buf);
	close(fd);
	return 0;

err:
	free(buf);
	if (fd >= 0)
		close(fd);
	demo_remove(d);
	return ret;
}

/* ---- the run ---- */

struct bench;

struct slot {
	struct aiol_req req;
	struct bench *b;
	uint64_t t0;
	void *buf;
	bool from_arena;
};

struct bench {
	const struct bench_opts *o;
	struct aiol_queue *q;
	struct slot *slots;
	uint64_t span;		/* bytes of the device in use */
	uint64_t nblocks;	/* span / bs */
	uint64_t next;		/* sequential position */
	uint64_t rng;
	uint64_t end_ns;
	unsigned int inflight;
	bool stop;
	int error;		/* first failure */
	uint64_t error_off;
	uint64_t ios;
	struct hist hist;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t next_off(struct bench *b)
{
	uint64_t x, blk;

	if (b->o->rw == RW_READ || b->o->rw == RW_WRITE) {
		blk = b->next++;
		if (b->next == b->nblocks)
			b->next = 0;
	} else {
		x = b->rng;	/* xorshift64* */
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		b->rng = x;
		blk = (x * 0x2545f4914f6cdd1dull) % b->nblocks;
	}
	return blk * b->o->bs;
}

static void slot_done(struct aiol_req *req, int res);

static void slot_submit(struct slot *s, uint64_t now)
{
	struct bench *b = s->b;

	s->req.off = next_off(b);
	s->t0 = now;
	b->inflight++;
	aiol_submit(b->q, &s->req);
}

static void slot_done(struct aiol_req *req, int res)
{
	struct slot *s = req->user;
	struct bench *b = s->b;
	uint64_t now = now_ns();

	b->inflight--;
	if (res < 0) {
		if (!b->error) {
			b->error = res;
			b->error_off = req->off;
		}
		b->stop = true;
		return;
	}
	b->ios++;
	hist_add(&b->hist, now - s->t0);
	if (now >= b->end_ns || interrupted)
		b->stop = true;
	if (!b->stop)
		slot_submit(s, now);
}

/* What a run measured, worked out once for either report. */
struct figures {
	double secs, iops, mib_s;
	double p50_us, p99_us, mean_us, max_us;
	double cpu_user_s, cpu_sys_s, cpu_us_per_io;
};

static struct figures figures_of(const struct bench *b, double secs, double cpu_user,
				 double cpu_sys)
{
	const struct hist *h = &b->hist;

	return (struct figures){
		.secs = secs,
		.iops = (double)b->ios / secs,
		.mib_s = (double)b->ios * (double)b->o->bs / secs / (1 << 20),
		.p50_us = (double)hist_percentile(h, 0.50) / 1e3,
		.p99_us = (double)hist_percentile(h, 0.99) / 1e3,
		.mean_us = h->n ? (double)h->sum / (double)h->n / 1e3 : 0,
		.max_us = (double)h->max / 1e3,
		.cpu_user_s = cpu_user,
		.cpu_sys_s = cpu_sys,
		.cpu_us_per_io = b->ios ? (cpu_user + cpu_sys) * 1e6 / (double)b->ios : 0,
	};
}

static void print_text(const struct bench *b, const struct aiol_dev_info *info,
		       const struct figures *f)
{
	const struct bench_opts *o = b->o;

	printf("aioloop bench: %s %s bs=%llu qd=%u direct=%s on %s (%.1f MiB used)\n",
	       aiol_engine_name(info->engine), rw_names[o->rw], (unsigned long long)o->bs,
	       o->qd, info->direct ? "on" : "off", info->path,
	       (double)b->span / (1 << 20));
	if (o->crypt.cipher)
		printf("  encrypted %s, %u-byte sectors\n", o->crypt.spec.name,
		       o->crypt.geom.sector_size);
	printf("  I/Os      %llu in %.2f s\n", (unsigned long long)b->ios, f->secs);
	printf("  IOPS      %.0f\n", f->iops);
	printf("  MiB/s     %.1f\n", f->mib_s);
	printf("  latency   p50 %.1f us, p99 %.1f us, mean %.1f us, max %.1f us\n", f->p50_us,
	       f->p99_us, f->mean_us, f->max_us);
	printf("  CPU       %.2f us per I/O (user %.2f s, system %.2f s)\n", f->cpu_us_per_io,
	       f->cpu_user_s, f->cpu_sys_s);
}

static void print_json(const struct bench *b, const struct aiol_dev_info *info,
		       const struct figures *f)
{
	const struct bench_opts *o = b->o;

	printf("{\"engine\": \"%s\", \"rw\": \"%s\", \"bs\": %llu, \"qd\": %u, "
	       "\"direct\": %s, \"file\": ",
	       aiol_engine_name(info->engine), rw_names[o->rw], (unsigned long long)o->bs, o->qd,
	       info->direct ? "true" : "false");
	cli_json_string(stdout, info->path);
	if (o->crypt.cipher)
		printf(", \"encrypt\": \"%s\", \"encrypt_sector_size\": %u", o->crypt.spec.name,
		       o->crypt.geom.sector_size);
	printf(", \"span_bytes\": %llu, \"seconds\": %.3f, \"ios\": %llu, "
	       "\"iops\": %.1f, \"mib_s\": %.2f, "
	       "\"lat_p50_us\": %.2f, \"lat_p99_us\": %.2f, \"lat_mean_us\": %.2f, "
	       "\"lat_max_us\": %.2f, \"cpu_us_per_io\": %.3f, "
	       "\"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f}\n",
	       (unsigned long long)b->span, f->secs, (unsigned long long)b->ios, f->iops,
	       f->mib_s, f->p50_us, f->p99_us, f->mean_us, f->max_us, f->cpu_us_per_io,
	       f->cpu_user_s, f->cpu_sys_s);
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* Open path and run the benchmark.  Returns the exit status. */
static int bench_run(const struct bench_opts *o, const char *path)
{
	struct aiol_open_opts oo = {
		.engine = o->engine,
		.direct = o->direct,
		.threads = o->threads,
		.read_only = o->rw == RW_READ || o->rw == RW_RANDREAD,
	};
	struct aiol_loop_opts lo = { 0 };
	struct aiol_queue_opts qo = { .depth = o->qd };
	struct aiol_crypt_opts copts;
	struct aiol_crypt_key *key = NULL;
	struct aiol_loop *loop = NULL;
	struct aiol_dev *dev = NULL;
	const struct aiol_dev_info *info;
	struct bench *b;
	struct rusage ru0, ru1;
	uint64_t t0, t1;
	unsigned int entries = 256;
	uint64_t fill = 0x2545f4914f6cdd1dull;
	int ret, status = 1;

	b = calloc(1, sizeof(*b));
	if (!b) {
		fprintf(stderr, "aioloop bench: out of memory\n");
		return 1;
	}
	b->o = o;
	b->rng = (uint64_t)now_ns() | 1;
	while (entries < o->qd)
		entries *= 2;
	lo.entries = entries;
	lo.submit_batch = o->submit_batch;
	lo.arena_bytes = 2 * o->bs * o->qd + (16u << 20);
	if (lo.arena_bytes < (64u << 20))
		lo.arena_bytes = 64u << 20;
	ret = aiol_loop_create(&lo, &loop);
	if (ret < 0) {
		fprintf(stderr, "aioloop bench: cannot create the event loop: %s\n",
			strerror(-ret));
		goto out;
	}
	if (cli_crypt_load(&o->crypt, &copts, &key) < 0)
		goto out;	/* it said why */
	oo.crypt = key ? &copts : NULL;
	ret = aiol_dev_open(path, &oo, &dev);
	aiol_crypt_key_free(key);	/* the stage keeps its own copy */
	if (ret < 0)
		goto out;	/* the engine said why */
	info = aiol_dev_info(dev);
	b->span = info->size;
	if (o->size) {
		if (o->size > info->size) {
			fprintf(stderr, "aioloop bench: --size %llu is larger than %s (%llu bytes)\n",
				(unsigned long long)o->size, path,
				(unsigned long long)info->size);
			goto out;
		}
		b->span = o->size;
	}
	b->nblocks = b->span / o->bs;
	if (b->nblocks == 0) {
		fprintf(stderr, "aioloop bench: --bs %llu is larger than the %llu bytes of %s in use\n",
			(unsigned long long)o->bs, (unsigned long long)b->span, path);
		goto out;
	}
	if (info->direct && o->bs % info->dio_align)
		fprintf(stderr, "aioloop bench: note: --bs %llu is not a multiple of the "
			"%u-byte direct I/O alignment: each request goes through a bounce "
			"buffer (writes read-modify-write)\n",
			(unsigned long long)o->bs, info->dio_align);
	if (o->file && (o->rw == RW_WRITE || o->rw == RW_RANDWRITE))
		fprintf(stderr, "aioloop bench: warning: --rw=%s overwrites the data in %s\n",
			rw_names[o->rw], path);
	ret = aiol_queue_create(dev, loop, &qo, &b->q);
	if (ret < 0) {
		fprintf(stderr, "aioloop bench: cannot create a %s queue: %s\n",
			aiol_engine_name(o->engine), strerror(-ret));
		goto out;
	}

	b->slots = calloc(o->qd, sizeof(*b->slots));
	if (!b->slots) {
		fprintf(stderr, "aioloop bench: out of memory\n");
		goto out;
	}
	for (unsigned int i = 0; i < o->qd; i++) {
		struct slot *s = &b->slots[i];

		s->b = b;
		s->buf = aiol_loop_buf_alloc(loop, o->bs);
		s->from_arena = s->buf != NULL;
		if (!s->buf && posix_memalign(&s->buf, 4096, o->bs)) {
			s->buf = NULL;
			fprintf(stderr, "aioloop bench: out of memory\n");
			goto out;
		}
		/* Data that does not compress or dedupe. */
		for (uint64_t k = 0; k < o->bs; k++)
			((uint8_t *)s->buf)[k] = (uint8_t)xorshift64(&fill);
		s->req.op = (o->rw == RW_READ || o->rw == RW_RANDREAD) ? AIOL_OP_READ :
									 AIOL_OP_WRITE;
		s->req.len = o->bs;
		s->req.buf = s->buf;
		s->req.done = slot_done;
		s->req.user = s;
	}
	getrusage(RUSAGE_SELF, &ru0);
	t0 = now_ns();
	b->end_ns = t0 + (uint64_t)(o->seconds * 1e9);
	for (unsigned int i = 0; i < o->qd; i++)
		slot_submit(&b->slots[i], t0);
	while (b->inflight) {
		ret = aiol_loop_run_once(loop, true);
		if (ret < 0 && ret != -EINTR) {
			fprintf(stderr, "aioloop bench: event loop: %s\n", strerror(-ret));
			goto out;	/* cannot drain: leave the rest to exit */
		}
		if (interrupted)
			b->stop = true;
	}
	t1 = now_ns();
	getrusage(RUSAGE_SELF, &ru1);

	if (b->error) {
		fprintf(stderr, "aioloop bench: I/O error at offset %llu of %s: %s\n",
			(unsigned long long)b->error_off, path, strerror(-b->error));
		goto out;
	}
	if (interrupted) {
		fprintf(stderr, "aioloop bench: interrupted\n");
		goto out;
	}
	{
		struct figures f = figures_of(b, (double)(t1 - t0) / 1e9,
					      tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime),
					      tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime));

		if (o->json)
			print_json(b, info, &f);
		else
			print_text(b, info, &f);
	}
	status = 0;

out:
	if (b->slots) {
		for (unsigned int i = 0; i < o->qd; i++) {
			if (b->slots[i].from_arena)
				aiol_loop_buf_free(loop, b->slots[i].buf, o->bs);
			else
				free(b->slots[i].buf);
		}
	}
	if (b->q && !b->inflight)
		aiol_queue_destroy(b->q);
	if (dev && !b->inflight)
		aiol_dev_close(dev);
	if (loop && !b->inflight)
		aiol_loop_destroy(loop);
	free(b->slots);
	free(b);
	return status;
}

int cmd_bench(int argc, char **argv)
{
	struct sigaction old_int, old_term;
	struct bench_opts o;
	struct demo demo = { 0 };
	const char *path;
	struct cli_err err;
	struct stat st;
	int status;

	status = bench_parse_args(argc, argv, &o, &err);
	if (status < 0) {
		fprintf(stderr, "aioloop bench: %s (see 'aioloop bench --help')\n", err.msg);
		return EXIT_USAGE;
	}
	if (status == CLI_HELP) {
		usage(stdout);
		return 0;
	}
	if (o.file && !aiol_rbd_name(o.file)) {
		if (stat(o.file, &st) < 0) {
			fprintf(stderr, "aioloop bench: %s: %s\n", o.file, strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			fprintf(stderr, "aioloop bench: %s: is a directory, not a file or block device\n",
				o.file);
			return 1;
		}
		if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
			fprintf(stderr, "aioloop bench: %s: not a regular file or block device\n",
				o.file);
			return 1;
		}
	}

	interrupted = 0;
	signals_install(&old_int, &old_term);
	if (o.file) {
		path = o.file;
	} else {
		status = demo_create(&demo, o.size ? o.size : DEMO_SIZE);
		if (status < 0) {
			status = 1;
			goto out;
		}
		o.size = 0;
		path = demo.path;
	}
	status = bench_run(&o, path);
out:
	demo_remove(&demo);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	return status;
}
