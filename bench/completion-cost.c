// SPDX-License-Identifier: MIT
/*
 * What a fixed CPU cost per completion leaves of a file's IOPS.
 *
 * One thread keeps QD O_DIRECT random reads in flight on FILE through
 * io_uring, as fio's io_uring engine does with its defaults (one submit per
 * new request, no registered buffers).  After each completion it spends
 * COST microseconds of CPU, spinning on the clock, before it issues the next
 * request: the work any layer between the application and the file does per
 * request on the thread that also reaps and submits -- an NBD client parsing
 * a reply, a server decrypting a sector, a frontend copying data.  COST 0 is
 * the raw file.
 *
 * A COST is written as:
 *   U      spin U microseconds (CPU, no memory touched)
 *   Ur     the same, after reading every byte of the buffer
 *   Ut     the same, after reading and writing every byte of the buffer
 *   Ux     the same, after decrypting the buffer in place with AES-256-XTS
 *          through GnuTLS, 512-byte sectors, the IV their sector number: the
 *          encryption stage's own work on a 4 KiB read (lib/cipher.c)
 *   UX     the same with 4096-byte sectors
 *   pS/D   no CPU: a pipe (see pipe_run) with S us per request and D us more,
 *          the thread polling its ring and the clock
 *   PS/D   the same pipe, the thread sleeping in io_uring_enter() while it
 *          waits, as a client or server that does not poll
 *
 * The costs run interleaved, round after round, and the median IOPS of each
 * is printed with its ratio to the median of COST 0, so a shared host's
 * drift falls on all of them alike.  Built and run by bench/completion-cost.
 *
 * Usage: completion-cost FILE QD BS SECONDS ROUNDS COST...
 * The first COST is the base of the ratios (the wrapper passes 0).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static double cpu_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rnd_state = 88172645463325252ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

enum work { W_SPIN, W_READ, W_TOUCH, W_XTS512, W_XTS4096, W_PIPE, W_PIPE_SLEEP };

static gnutls_cipher_hd_t xts;
static volatile uint64_t sink; /* keeps the reads of W_READ */

/* Decrypt buf in place, sector by sector, as lib/cipher.c does. */
static int xts_decrypt(void *buf, unsigned int bs, unsigned int ss, uint64_t off)
{
	for (unsigned int pos = 0; pos < bs; pos += ss) {
		uint64_t s = (off + pos) / 512;
		uint8_t iv[16] = {0};

		for (int i = 0; i < 8; i++)
			iv[i] = (uint8_t)(s >> (8 * i));
		gnutls_cipher_set_iv(xts, iv, sizeof(iv));
		if (gnutls_cipher_decrypt(xts, (uint8_t *)buf + pos, ss) < 0)
			return -EIO;
	}
	return 0;
}

struct run {
	double iops, cpu_us;
};

/* One run's reads: its ring, its clock, what it has done. */
struct reader {
	struct io_uring ring;
	int fd;
	unsigned int bs, inflight;
	uint64_t blocks, start, end, done;
	double c0;
};

/* Queue a read of a random block into buf. */
static void reader_queue(struct reader *r, void *buf)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	io_uring_prep_read(sqe, r->fd, buf, r->bs, (rnd() % r->blocks) * r->bs);
	io_uring_sqe_set_data(sqe, buf);
	r->inflight++;
}

/* The next read into buf, submitted at once, if the run is not over. */
static void reader_issue(struct reader *r, void *buf)
{
	if (now_ns() >= r->end)
		return;
	reader_queue(r, buf);
	io_uring_submit(&r->ring);
}

/* Set up the ring and put qd reads in flight, one per buffer of bufs. */
static int reader_start(struct reader *r, int fd, uint64_t blocks, unsigned int qd, unsigned int bs,
			double secs, char *bufs)
{
	int ret = io_uring_queue_init(qd * 2, &r->ring, 0);

	if (ret < 0)
		return ret;
	r->fd = fd;
	r->bs = bs;
	r->blocks = blocks;
	r->inflight = 0;
	r->done = 0;
	r->c0 = cpu_s();
	r->start = now_ns();
	r->end = r->start + (uint64_t)(secs * 1e9);
	for (unsigned int i = 0; i < qd; i++)
		reader_queue(r, bufs + (size_t)i * bs);
	io_uring_submit(&r->ring);
	return 0;
}

/* Take a completion: its buffer, or NULL with *ret set on a failed read. */
static void *reader_take(struct reader *r, struct io_uring_cqe *cqe, int *ret)
{
	void *buf = io_uring_cqe_get_data(cqe);

	if (cqe->res != (int)r->bs) {
		*ret = cqe->res < 0 ? cqe->res : -EIO;
		return NULL;
	}
	io_uring_cqe_seen(&r->ring, cqe);
	r->inflight--;
	r->done++;
	return buf;
}

/* The run's figures into out, and the ring closed. */
static void reader_finish(struct reader *r, struct run *out)
{
	out->iops = (double)r->done / ((double)(now_ns() - r->start) * 1e-9);
	out->cpu_us = (cpu_s() - r->c0) * 1e6 / (double)(r->done ? r->done : 1);
	io_uring_queue_exit(&r->ring);
}

static int one_run(int fd, uint64_t blocks, unsigned int qd, unsigned int bs, double secs,
		   double cost_us, enum work work, char *bufs, struct run *out)
{
	uint64_t cost_ns = (uint64_t)(cost_us * 1000.0);
	struct reader r;
	int ret;

	ret = reader_start(&r, fd, blocks, qd, bs, secs, bufs);
	if (ret < 0)
		return ret;
	while (r.inflight) {
		struct io_uring_cqe *cqe;
		void *buf;

		ret = io_uring_wait_cqe(&r.ring, &cqe);
		if (ret < 0)
			break;
		buf = reader_take(&r, cqe, &ret);
		if (!buf)
			break;
		if (work == W_READ) {
			/* Read every byte, as anything that uses the data does. */
			const uint64_t *w = buf;
			uint64_t sum = 0;

			for (unsigned int i = 0; i < bs / 8; i++)
				sum += w[i];
			sink += sum;
		} else if (work == W_TOUCH) {
			/* Read and write every byte, as a cipher working in place would. */
			uint64_t *w = buf;

			for (unsigned int i = 0; i < bs / 8; i++)
				w[i] ^= 0x5a5a5a5a5a5a5a5aull;
		} else if (work == W_XTS512 || work == W_XTS4096) {
			ret = xts_decrypt(buf, bs, work == W_XTS512 ? 512 : 4096, r.done * bs);
			if (ret < 0)
				break;
		}
		if (cost_ns) {
			uint64_t until = now_ns() + cost_ns;

			while (now_ns() < until)
				;
		}
		reader_issue(&r, buf);
	}
	reader_finish(&r, out);
	return ret < 0 ? ret : 0;
}

/*
 * The same reads, but each completion goes through a pipe before its next
 * request reaches the file: a single server that takes serve_us for each
 * request in turn (first come, first served), then a further delay_us.
 * That is what a client and transport with that throughput and that base
 * latency put between a read's completion and the next request -- no CPU
 * is spent on it.  The thread polls its ring and the clock, or, with sleep,
 * sleeps in io_uring_enter() until a completion comes or the next request
 * is due: how a client or server that does not poll waits.
 */
static int pipe_run(int fd, uint64_t blocks, unsigned int qd, unsigned int bs, double secs,
		    double serve_us, double delay_us, bool sleep, char *bufs, struct run *out)
{
	uint64_t serve = (uint64_t)(serve_us * 1000.0), delay = (uint64_t)(delay_us * 1000.0);
	uint64_t free_at = 0, *ready;
	unsigned int head = 0, count = 0;
	struct reader r;
	void **pend;
	int ret;

	ready = calloc(qd, sizeof(*ready));
	pend = calloc(qd, sizeof(*pend));
	if (!ready || !pend) {
		ret = -ENOMEM;
		goto out;
	}
	ret = reader_start(&r, fd, blocks, qd, bs, secs, bufs);
	if (ret < 0)
		goto out;
	while (r.inflight || count) {
		struct io_uring_cqe *cqe;
		uint64_t now = now_ns();

		while (io_uring_peek_cqe(&r.ring, &cqe) == 0) {
			void *buf = reader_take(&r, cqe, &ret);

			if (!buf)
				goto finish;
			free_at = (free_at > now ? free_at : now) + serve;
			pend[(head + count) % qd] = buf;
			ready[(head + count) % qd] = free_at + delay;
			count++;
		}
		while (count && ready[head] <= now) {
			reader_issue(&r, pend[head]);
			head = (head + 1) % qd;
			count--;
		}
		if (sleep && !count && r.inflight) {
			/* Nothing due: sleep until a completion comes. */
			if (io_uring_wait_cqe(&r.ring, &cqe) < 0)
				break;
		} else if (sleep && count && ready[head] > now + 2000) {
			/* Sleep until the next one is due, or a completion comes. */
			struct __kernel_timespec ts = {0, (long long)(ready[head] - now)};

			io_uring_wait_cqe_timeout(&r.ring, &cqe, &ts);
		}
	}
finish:
	reader_finish(&r, out);
out:
	free(ready);
	free(pend);
	return ret < 0 ? ret : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Parse one COST (see the top of this file); returns 0 or -EINVAL. */
static int parse_cost(const char *a, double *cost, double *delay, enum work *work)
{
	char *end;

	*delay = 0;
	if (*a == 'p' || *a == 'P') {
		*work = *a == 'p' ? W_PIPE : W_PIPE_SLEEP;
		*cost = strtod(a + 1, &end);
		if (end == a + 1 || *end != '/')
			return -EINVAL;
		a = end + 1;
		*delay = strtod(a, &end);
		if (end == a || *end || *delay < 0 || *delay > 100000)
			return -EINVAL;
	} else {
		*cost = strtod(a, &end);
		if (end == a)
			return -EINVAL;
		if (!*end)
			*work = W_SPIN;
		else if (!strcmp(end, "r"))
			*work = W_READ;
		else if (!strcmp(end, "t"))
			*work = W_TOUCH;
		else if (!strcmp(end, "x"))
			*work = W_XTS512;
		else if (!strcmp(end, "X"))
			*work = W_XTS4096;
		else
			return -EINVAL;
	}
	return *cost >= 0 && *cost <= 1000 ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
	static uint8_t key[64]; /* the cipher's speed does not depend on the key */
	gnutls_datum_t k = {key, sizeof(key)};
	unsigned int qd, bs;
	int rounds, ncost, fd, r, c;
	double secs, *cost, *delay, *iops, *cpu, base;
	enum work *work;
	struct stat st;
	char *bufs;

	if (argc < 7) {
		fprintf(stderr, "usage: %s FILE QD BS SECONDS ROUNDS COST...\n", argv[0]);
		return 2;
	}
	qd = (unsigned int)atoi(argv[2]);
	bs = (unsigned int)atoi(argv[3]);
	secs = atof(argv[4]);
	rounds = atoi(argv[5]);
	ncost = argc - 6;
	if (qd < 1 || qd > 1024 || bs < 4096 || bs > (1u << 20) || bs % 4096 || secs <= 0 ||
	    secs > 600 || rounds < 1 || rounds > 1000) {
		fprintf(stderr, "completion-cost: bad QD (1-1024), BS (4096-1M, a multiple of "
				"4096), SECONDS or ROUNDS\n");
		return 2;
	}
	cost = calloc((size_t)ncost, sizeof(*cost));
	delay = calloc((size_t)ncost, sizeof(*delay));
	work = calloc((size_t)ncost, sizeof(*work));
	iops = calloc((size_t)ncost * (size_t)rounds, sizeof(*iops));
	cpu = calloc((size_t)ncost * (size_t)rounds, sizeof(*cpu));
	if (!cost || !delay || !work || !iops || !cpu ||
	    posix_memalign((void **)&bufs, 4096, (size_t)qd * bs)) {
		fprintf(stderr, "completion-cost: out of memory\n");
		return 1;
	}
	memset(bufs, 0, (size_t)qd * bs);
	for (c = 0; c < ncost; c++) {
		if (parse_cost(argv[6 + c], &cost[c], &delay[c], &work[c]) < 0) {
			fprintf(stderr,
				"completion-cost: bad COST %s (U, Ur, Ut, Ux, UX, pS/D or PS/D)\n",
				argv[6 + c]);
			return 2;
		}
	}
	fd = open(argv[1], O_RDONLY | O_DIRECT);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "completion-cost: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < bs) {
		fprintf(stderr, "completion-cost: %s: not a regular file of one block or more\n",
			argv[1]);
		return 1;
	}
	if (gnutls_cipher_init(&xts, GNUTLS_CIPHER_AES_256_XTS, &k, NULL) < 0) {
		fprintf(stderr, "completion-cost: GnuTLS has no AES-256-XTS\n");
		return 1;
	}
	for (r = 0; r < rounds; r++) {
		for (c = 0; c < ncost; c++) {
			struct run run = {0, 0};
			uint64_t blocks = (uint64_t)st.st_size / bs;
			int ret =
			    work[c] >= W_PIPE
				? pipe_run(fd, blocks, qd, bs, secs, cost[c], delay[c],
					   work[c] == W_PIPE_SLEEP, bufs, &run)
				: one_run(fd, blocks, qd, bs, secs, cost[c], work[c], bufs, &run);

			if (ret < 0) {
				fprintf(stderr, "completion-cost: %s: %s\n", argv[1],
					strerror(-ret));
				return 1;
			}
			iops[c * rounds + r] = run.iops;
			cpu[c * rounds + r] = run.cpu_us;
		}
		fprintf(stderr, "completion-cost: round %d of %d done\n", r + 1, rounds);
	}
	printf("# %u-byte random reads, QD %u, %d round(s) of %.1f s per cost, medians\n", bs, qd,
	       rounds, secs);
	printf("%-12s %10s %8s %14s\n", "cost", "iops", "x_first", "thread_cpu_us");
	base = 0;
	for (c = 0; c < ncost; c++) {
		double m = median(iops + c * rounds, rounds);
		double u = median(cpu + c * rounds, rounds);

		if (c == 0)
			base = m;
		printf("%-12s %10.0f %8.2f %14.2f\n", argv[6 + c], m, base > 0 ? m / base : 0, u);
	}
	gnutls_cipher_deinit(xts);
	close(fd);
	return 0;
}
