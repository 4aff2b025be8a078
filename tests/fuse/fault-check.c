// SPDX-License-Identifier: MIT
/*
 * fault-check: drives the engine against a file served by faultfs (see
 * faultfs.c) and checks that injected faults come out right:
 *
 *   - EIO from the backing reaches done() as -EIO, for reads, writes and
 *     FUA writes, and requests beside the bad range still work;
 *   - short reads and writes (cut at an offset, or every transfer halved)
 *     are completed by resubmitting the remainder: done(0), data correct,
 *     also with many requests in flight;
 *   - a read that hits a premature end of file fails instead of returning
 *     success or spinning;
 *   - EAGAIN from the backing is retried: done(0), data correct;
 *   - a backing that refuses O_DIRECT: direct=on fails, auto goes buffered;
 *   - a backing without fallocate: fast-only write-zeroes says -ENOTSUP and
 *     changes nothing, plain write-zeroes writes zeroes.
 *
 * Usage: fault-check MOUNTPOINT ENGINE DIRECT [PHASE,...]
 * MOUNTPOINT holds faultfs's "disk" and "ctl".  Phases: eio, shortread,
 * shortwrite, eagain, nodirect, nofallocate (default: all).  Short writes need a
 * faultfs mounted with --sync-dio, short reads one without (faultfs.c).  Prints "ok - ..." /
 * "not ok - ..." lines (prefixed with ENGINE and DIRECT) and exits 0 when
 * all passed, 1 when one failed, 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "engine-util.h"

#define KiB (1024ull)
#define MiB (1024ull * 1024)
#define DISK_SIZE (4 * MiB)

static char disk_path[4096], ctl_path[4096];
static const char *tag;
static int failures;
static uint8_t *model;
static uint64_t rng = 0x1234567;

static void result(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print a result line.  Details in a trailing "(...)" are shown only when
 * the check failed, so that passing names stay the same from run to run. */
static void result(bool ok, const char *fmt, ...)
{
	char msg[512], *paren;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	paren = strrchr(msg, '(');
	if (ok && paren && paren > msg && paren[-1] == ' ' && msg[strlen(msg) - 1] == ')')
		paren[-1] = '\0';
	printf("%s - %s: %s\n", ok ? "ok" : "not ok", tag, msg);
	fflush(stdout);
	if (!ok)
		failures++;
}

/* Write rule lines to ctl.  Exits on failure: nothing else can be trusted. */
static void rules(const char *text)
{
	int fd = open(ctl_path, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(text);

	if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
		fprintf(stderr, "fault-check: writing '%s' to %s: %m\n", text, ctl_path);
		exit(1);
	}
	close(fd);
}

/* The value of one of faultfs's counters. */
static unsigned long long counter(const char *name)
{
	char buf[1024], *p;
	size_t nlen = strlen(name);
	ssize_t n;
	int fd = open(ctl_path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, name, nlen) && p[nlen] == '=')
			return strtoull(p + nlen + 1, NULL, 10);
	return 0;
}

static int run(struct eng_env *e, uint8_t op, uint64_t off, uint64_t len, void *buf, uint32_t flags)
{
	return eng_run(e, op, off, len, buf, flags);
}

/* Read through the engine and compare with the model. */
static bool read_ok(struct eng_env *e, uint64_t off, uint64_t len, int *res)
{
	uint8_t *buf = malloc(len);
	bool ok;

	if (!buf) {
		*res = -ENOMEM;
		return false;
	}
	memset(buf, 0xa5, len);
	*res = run(e, AIOL_OP_READ, off, len, buf, 0);
	ok = *res == 0 && !memcmp(buf, model + off, len);
	free(buf);
	return ok;
}

static bool model_matches_disk(void)
{
	return eng_file_cmp(disk_path, 0, model, DISK_SIZE) == -1;
}

static int open_env(struct eng_env *e, enum aiol_engine engine, enum aiol_direct direct)
{
	struct aiol_open_opts o = {.engine = engine, .direct = direct};

	return eng_env_open(e, disk_path, &o, 0, 0);
}

static void check_eio(struct eng_env *e)
{
	unsigned long long c0;
	uint8_t buf[8192];
	bool ok;
	int res;

	rules("clear\neio read 1048576 4096\n");
	c0 = counter("eio_read");
	res = run(e, AIOL_OP_READ, 1 * MiB - 1000, 8192, buf, 0);
	result(res == -EIO && counter("eio_read") > c0,
	       "read over a bad range fails with EIO (res %d)", res);
	{
		uint8_t *big = malloc(1 * MiB);

		if (!big)
			exit(1);
		res = run(e, AIOL_OP_READ, 512 * KiB, 1 * MiB, big, 0);
		free(big);
	}
	result(res == -EIO, "a 1 MiB read whose middle is bad fails with EIO (res %d)", res);
	ok = read_ok(e, 1 * MiB + 8192, 64 * KiB, &res);
	result(ok, "a read beside it works (res %d)", res);

	rules("clear\neio write 2097152 4096\n");
	c0 = counter("eio_write");
	memset(buf, 0x42, sizeof(buf));
	res = run(e, AIOL_OP_WRITE, 2 * MiB - 100, 5000, buf, 0);
	result(res == -EIO && counter("eio_write") > c0,
	       "write over a bad range fails with EIO (res %d)", res);
	res = run(e, AIOL_OP_WRITE, 2 * MiB + 1000, 100, buf, AIOL_F_FUA);
	result(res == -EIO, "FUA write over a bad range fails with EIO (res %d)", res);
	res = run(e, AIOL_OP_WRITE, 2 * MiB + 8192, 100, model + 2 * MiB + 8192, 0);
	result(res == 0, "a write beside it works (res %d)", res);
	/* What reached the file before the error is unknown: restore it. */
	rules("clear\n");
	res = run(e, AIOL_OP_WRITE, 2 * MiB - 8192, 16384, model + 2 * MiB - 8192, 0);
	result(res == 0 && model_matches_disk(), "after clearing the fault the range writes again");
}

static void check_short_read(struct eng_env *e)
{
	unsigned long long c0;
	struct eng_op ops[32];
	uint8_t *bufs[32];
	uint8_t *buf;
	bool ok = true;
	int res;

	rules("clear\nshort read 3146962\n"); /* 3 MiB + 1234 */
	c0 = counter("short_read");
	ok = read_ok(e, 3 * MiB, 64 * KiB, &res);
	result(ok && counter("short_read") > c0, "a read cut short is completed (res %d)", res);
	ok = read_ok(e, 3 * MiB + 1, 1233 + 7, &res);
	result(ok, "unaligned, cut short (res %d)", res);

	rules("clear\nhalf read\n");
	c0 = counter("short_read");
	ok = read_ok(e, 100, 300000, &res);
	result(ok && counter("short_read") > c0 + 2,
	       "a read where every transfer is halved is completed (res %d, %llu cuts)", res,
	       counter("short_read") - c0);
	/* Many at once. */
	for (int i = 0; i < 32; i++) {
		uint64_t len = eng_rand_range(&rng, 1, 100 * KiB);
		uint64_t off = eng_rand_range(&rng, 0, DISK_SIZE - len);

		bufs[i] = malloc(len);
		if (!bufs[i])
			exit(1);
		eng_op_init(&ops[i], AIOL_OP_READ, off, len, bufs[i], 0);
		eng_submit(e, &ops[i]);
	}
	if (eng_drain(e, 60000) < 0)
		ok = false;
	for (int i = 0; i < 32; i++) {
		if (ops[i].res != 0 || memcmp(bufs[i], model + ops[i].req.off, ops[i].req.len))
			ok = false;
		free(bufs[i]);
	}
	result(ok, "32 halved reads in flight all complete with the right data");

	/* A read that keeps returning 0 bytes must fail, not succeed or spin. */
	rules("clear\nshort read 3158016\neof read 3158016\n"); /* 3 MiB + 12 KiB */
	buf = malloc(64 * KiB);
	if (!buf)
		exit(1);
	c0 = counter("eof_read");
	res = run(e, AIOL_OP_READ, 3 * MiB, 64 * KiB, buf, 0);
	result(res < 0 && res != -ETIMEDOUT && counter("eof_read") > c0,
	       "a read that hits a premature end of file fails (res %d %s)", res, strerror(-res));
	free(buf);
	rules("clear\n");
}

/*
 * Does this kernel's io_uring complete a short O_DIRECT write on this
 * mount correctly?  Linux 6.18 retries the rest inside the kernel without
 * advancing the file position (FUSE's sync direct I/O path keeps ki_pos in
 * a local), writes the tail over the head and reports the full length: no
 * caller can notice, so the engine cannot be tested there.  Leaves the
 * first 16 KiB as in the model.
 */
static bool kernel_uring_short_odirect_write_ok(void)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	uint8_t *buf = NULL;
	bool ok = false;
	int fd, res = -1;

	fd = open(disk_path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0 || posix_memalign((void **)&buf, 4096, 16384))
		goto out;
	if (io_uring_queue_init(4, &ring, 0) < 0)
		goto out;
	memcpy(buf, model, 16384);
	buf[0] ^= 1; /* differs from the model until rewritten */
	rules("clear\nshort write 5000\n");
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_write(sqe, fd, buf, 16384, 0);
	if (io_uring_submit_and_wait(&ring, 1) == 1 && io_uring_peek_cqe(&ring, &cqe) == 0) {
		res = cqe->res;
		io_uring_cqe_seen(&ring, cqe);
	}
	io_uring_queue_exit(&ring);
	rules("clear\n");
	if (res == 16384) {
		model[0] ^= 1;
		ok = model_matches_disk();
		model[0] ^= 1;
	} else {
		ok = true; /* a short count or an error: the engine sees it */
	}
	if (pwrite(fd, model, 16384, 0) != 16384) /* aligned: model is page-aligned */
		ok = false;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return ok;
}

static void check_short_write(struct eng_env *e)
{
	unsigned long long c0;
	uint8_t *buf;
	int res;

	buf = malloc(200000);
	if (!buf)
		exit(1);
	rules("clear\nshort write 3150728\n"); /* 3 MiB + 5000 */
	c0 = counter("short_write");
	eng_rand_fill(&rng, buf, 20000);
	memcpy(model + 3 * MiB + 4000, buf, 20000);
	res = run(e, AIOL_OP_WRITE, 3 * MiB + 4000, 20000, buf, 0);
	rules("clear\n");
	result(res == 0 && counter("short_write") > c0 && model_matches_disk(),
	       "a write cut short is completed (res %d)", res);

	rules("clear\nhalf write\n");
	c0 = counter("short_write");
	eng_rand_fill(&rng, buf, 200000);
	memcpy(model + 1000, buf, 200000);
	res = run(e, AIOL_OP_WRITE, 1000, 200000, buf, AIOL_F_FUA);
	rules("clear\n");
	result(res == 0 && counter("short_write") > c0 + 2 && model_matches_disk(),
	       "a FUA write where every transfer is halved is completed (res %d)", res);
	free(buf);
}

/* EAGAIN reaches Linux AIO, threads and sync callers; io_uring retries a
 * blocking file read or write that got EAGAIN itself, so for uring this
 * checks the combination rather than the engine's own retry. */
static void check_eagain(struct eng_env *e)
{
	unsigned long long c0;
	uint8_t *buf;
	bool ok;
	int res;

	rules("clear\neagain read 3\n");
	c0 = counter("eagain_read");
	ok = read_ok(e, 2 * MiB + 5, 100000, &res);
	result(ok && counter("eagain_read") > c0, "a read that gets EAGAIN is retried (res %d)",
	       res);
	buf = malloc(70000);
	if (!buf)
		exit(1);
	eng_rand_fill(&rng, buf, 70000);
	memcpy(model + 2 * MiB + 3, buf, 70000);
	rules("clear\neagain write 3\n");
	c0 = counter("eagain_write");
	res = run(e, AIOL_OP_WRITE, 2 * MiB + 3, 70000, buf, 0);
	rules("clear\n");
	result(res == 0 && counter("eagain_write") > c0 && model_matches_disk(),
	       "a write that gets EAGAIN is retried (res %d)", res);
	free(buf);
}

static void check_nodirect(enum aiol_engine engine)
{
	struct eng_env e;
	bool ok;
	int res;

	rules("clear\nnodirect\n");
	res = open_env(&e, engine, AIOL_DIRECT_ON);
	result(res < 0 && counter("nodirect") > 0,
	       "direct=on on a backing without O_DIRECT fails (res %d)", res);
	if (res == 0)
		eng_env_close(&e);
	res = open_env(&e, engine, AIOL_DIRECT_AUTO);
	if (res == -EINVAL && engine == AIOL_ENGINE_AIO) {
		printf("skip - %s: direct=auto on a backing without O_DIRECT: "
		       "the aio backend needs O_DIRECT\n",
		       tag);
	} else {
		result(res == 0 && !e.info->direct,
		       "direct=auto on a backing without O_DIRECT goes buffered (res %d)", res);
		if (res == 0) {
			ok = read_ok(&e, 4095, 10000, &res);
			result(ok, "and reads (res %d)", res);
			eng_env_close(&e);
		}
	}
	rules("clear\n");
}

static void check_nofallocate(enum aiol_engine engine, enum aiol_direct direct)
{
	struct eng_env e;
	uint8_t *buf;
	int res;

	rules("clear\nnofallocate\n");
	res = open_env(&e, engine, direct);
	if (res < 0) {
		result(false, "open with fallocate refused: %s", strerror(-res));
		return;
	}
	res = run(&e, AIOL_OP_WRITE_ZEROES, 64 * KiB, 64 * KiB, NULL, AIOL_F_FAST_ONLY);
	result(res == -ENOTSUP && model_matches_disk(),
	       "fast-only write-zeroes without fallocate: ENOTSUP, nothing changed (res %d)", res);
	res = run(&e, AIOL_OP_WRITE_ZEROES, 64 * KiB, 64 * KiB, NULL,
		  AIOL_F_FAST_ONLY | AIOL_F_NO_UNMAP);
	result(res == -ENOTSUP && model_matches_disk(),
	       "fast-only no-unmap write-zeroes without fallocate: ENOTSUP (res %d)", res);
	res = run(&e, AIOL_OP_WRITE_ZEROES, 64 * KiB + 100, 100000, NULL, 0);
	memset(model + 64 * KiB + 100, 0, 100000);
	result(res == 0 && model_matches_disk(),
	       "write-zeroes without fallocate writes zeroes (res %d)", res);
	res = run(&e, AIOL_OP_WRITE_ZEROES, 512 * KiB, 3 * MiB, NULL, AIOL_F_NO_UNMAP);
	memset(model + 512 * KiB, 0, 3 * MiB);
	result(res == 0 && model_matches_disk(),
	       "a 3 MiB no-unmap write-zeroes without fallocate writes zeroes (res %d)", res);
	/* Discard may be refused or done; whatever it did reads back. */
	res = run(&e, AIOL_OP_DISCARD, 4096, 8192, NULL, 0);
	buf = malloc(8192);
	if (!buf)
		exit(1);
	if (eng_read_file(disk_path, 4096, 8192, buf, false) == 0)
		memcpy(model + 4096, buf, 8192);
	free(buf);
	result(res == 0 || res == -EOPNOTSUPP,
	       "discard without fallocate succeeds or says EOPNOTSUPP (res %d)", res);
	eng_env_close(&e);
	rules("clear\n");
}

int main(int argc, char **argv)
{
	static char tagbuf[64];
	enum aiol_engine engine;
	enum aiol_direct direct;
	struct eng_env e;
	const char *phases = "eio,shortread,shortwrite,eagain,nodirect,nofallocate";
	int fd, res;

	if (argc == 5) {
		phases = argv[4];
		argc = 4;
	}
	if (argc == 4 && !strcmp(argv[3], "auto"))
		direct = AIOL_DIRECT_AUTO;
	else if (argc == 4 && !strcmp(argv[3], "on"))
		direct = AIOL_DIRECT_ON;
	else if (argc == 4 && !strcmp(argv[3], "off"))
		direct = AIOL_DIRECT_OFF;
	else
		argc = 0;
	if (argc != 4 || aiol_engine_parse(argv[2], &engine) < 0) {
		fprintf(stderr, "Usage: fault-check MOUNTPOINT uring|aio|threads|sync auto|on|off "
				"[PHASE,...]\n");
		return 2;
	}
	aiol_log_setup("fault-check", AIOL_LOG_ERR, NULL);
	snprintf(tagbuf, sizeof(tagbuf), "%s direct=%s", argv[2], argv[3]);
	tag = tagbuf;
	snprintf(disk_path, sizeof(disk_path), "%s/disk", argv[1]);
	snprintf(ctl_path, sizeof(ctl_path), "%s/ctl", argv[1]);

	/* Known content, written through the mount with no rules. */
	rules("clear\n");
	if (posix_memalign((void **)&model, 4096, DISK_SIZE))
		return 1;
	eng_rand_fill(&rng, model, DISK_SIZE);
	fd = open(disk_path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || pwrite(fd, model, DISK_SIZE, 0) != (ssize_t)DISK_SIZE) {
		fprintf(stderr, "fault-check: writing %s: %m\n", disk_path);
		return 1;
	}
	close(fd);

	res = open_env(&e, engine, direct);
	if (res < 0) {
		result(false, "open %s: %s", disk_path, strerror(-res));
		return 1;
	}
	if (strstr(phases, "eio"))
		check_eio(&e);
	if (strstr(phases, "shortread"))
		check_short_read(&e);
	if (strstr(phases, "eagain"))
		check_eagain(&e);
	if (strstr(phases, "shortwrite")) {
		if (engine == AIOL_ENGINE_URING && e.info->direct &&
		    !kernel_uring_short_odirect_write_ok())
			printf("skip - %s: short writes: this kernel's io_uring completes a short "
			       "O_DIRECT write on FUSE from the wrong offset and reports success\n",
			       tag);
		else
			check_short_write(&e);
	}
	result(e.done_in_submit == 0 && e.double_done == 0 && e.pending == 0,
	       "completion contract kept under faults");
	eng_env_close(&e);
	if (strstr(phases, "nodirect"))
		check_nodirect(engine);
	if (strstr(phases, "nofallocate"))
		check_nofallocate(engine, direct);
	result(model_matches_disk(), "the file holds exactly what was written");
	free(model);
	return failures ? 1 : 0;
}
