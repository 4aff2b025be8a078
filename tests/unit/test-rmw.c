// SPDX-License-Identifier: MIT
/*
 * Unit tests of the engine's data paths against a shadow copy, on every
 * engine, on a direct-I/O file under /var/tmp (when O_DIRECT works there)
 * and on a tmpfs file: unaligned reads and writes with misaligned buffers
 * (read-modify-write through the bounce buffer), many overlapping
 * unaligned and aligned writes in flight at once (none may be lost, and
 * overlapping ones land in submission order), a 70 MiB unaligned request
 * (bounded bounce memory), and write-zeroes written by hand (no-unmap on
 * tmpfs, which has no ZERO_RANGE) over more than 64 MiB, and unaligned
 * writes into the same blocks from queues on different threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <cmocka.h>

#include "aioloop/engine.h"
#include "aioloop/log.h"
#include "engine-util.h"
#include "run-req.h"

#define MiB (1024u * 1024u)
#define NREQ 200	/* values 1..NREQ tell the writers apart */

struct fixture {
	char path[256];
	bool direct;	/* the file system does O_DIRECT */
	bool is_bdev;	/* never unlinked */
	char backing[256]; /* a loop device this test attached: its file */
	int loop_fd;	   /* ... and the device, open, to detach it */
};

static int make(void **state, const char *dir, bool want_tmpfs)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fd;

	*state = f;
	if (!f)
		return -1;
	if (eng_dir_is_tmpfs(dir) != want_tmpfs)
		return 0;	/* the test skips */
	snprintf(f->path, sizeof(f->path), "%s/aioloop-rmw-XXXXXX", dir);
	fd = mkstemp(f->path);
	if (fd < 0) {
		f->path[0] = 0;
		return 0;
	}
	if (ftruncate(fd, 96 * MiB) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	fd = open(f->path, O_RDWR | O_DIRECT);
	f->direct = fd >= 0 && !want_tmpfs;
	if (fd >= 0)
		close(fd);
	return 0;
}

static int setup_disk(void **state)
{
	const char *t = getenv("TESTTMP");

	return make(state, t && *t && !eng_dir_is_tmpfs(t) ? t : "/var/tmp", false);
}

static int setup_shm(void **state)
{
	return make(state, "/dev/shm", true);
}

/* Attach a fresh 96 MiB file on a disk file system (direct I/O) as a loop
 * device, as root; returns the device's fd (kept to detach it) or -1. */
static int attach_loop(struct fixture *f)
{
	struct loop_config lc = { .block_size = 512, .info.lo_flags = LO_FLAGS_AUTOCLEAR };
	int ctl, nr, fd, lfd = -1;

	snprintf(f->backing, sizeof(f->backing), "/var/tmp/aioloop-rmw-bdev-XXXXXX");
	fd = mkstemp(f->backing);
	if (fd < 0) {
		f->backing[0] = 0;
		return -1;
	}
	if (ftruncate(fd, 96 * MiB) < 0)
		goto out;
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		goto out;
	nr = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	if (nr < 0)
		goto out;
	snprintf(f->path, sizeof(f->path), "/dev/loop%d", nr);
	lfd = open(f->path, O_RDWR | O_CLOEXEC);
	lc.fd = (uint32_t)fd;
	lc.info.lo_flags |= LO_FLAGS_DIRECT_IO;
	if (lfd >= 0 && ioctl(lfd, LOOP_CONFIGURE, &lc) < 0) {
		lc.info.lo_flags &= ~LO_FLAGS_DIRECT_IO;
		if (ioctl(lfd, LOOP_CONFIGURE, &lc) < 0) {
			close(lfd);
			lfd = -1;
		}
	}
out:
	close(fd);
	if (lfd < 0) {
		f->path[0] = 0;
		unlink(f->backing);
		f->backing[0] = 0;
	}
	return lfd;
}

/* A scratch block device: the one named by AIOLOOP_TEST_BDEV (its data is
 * overwritten; at least 96 MiB) or, as root, a loop device this test
 * attaches to a file of its own (detached and removed by teardown). */
static int setup_bdev(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *d = getenv("AIOLOOP_TEST_BDEV");

	*state = f;
	if (!f)
		return -1;
	f->loop_fd = -1;
	if (d && *d)
		snprintf(f->path, sizeof(f->path), "%s", d);
	else if (geteuid() == 0)
		f->loop_fd = attach_loop(f);
	f->direct = true;
	f->is_bdev = true;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f && f->path[0] && !f->is_bdev)
		unlink(f->path);
	if (f && f->is_bdev && f->loop_fd >= 0) {
		ioctl(f->loop_fd, LOOP_CLR_FD, 0);
		close(f->loop_fd);
	}
	if (f && f->backing[0])
		unlink(f->backing);
	free(f);
	return 0;
}

static void wait_all(struct aiol_loop *loop, struct aiol_queue *q)
{
	while (aiol_queue_inflight(q))
		assert_true(aiol_loop_run_once(loop, true) >= 0);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Check the first `size` bytes of the dev against shadow. */
static void verify(struct aiol_loop *loop, struct aiol_queue *q, const char *shadow, uint64_t size)
{
	char *buf = malloc(4 * MiB + 1);
	struct aiol_req rq = { .op = AIOL_OP_READ };

	assert_non_null(buf);
	for (uint64_t off = 0; off < size; off += 4 * MiB) {
		rq.off = off;
		rq.len = size - off < 4 * MiB ? size - off : 4 * MiB;
		rq.buf = buf + 1;	/* misaligned on purpose */
		assert_int_equal(run_req(loop, q, &rq), 0);
		if (memcmp(buf + 1, shadow + off, rq.len)) {
			for (uint64_t i = 0; i < rq.len; i++)
				if (buf[1 + i] != shadow[off + i])
					fail_msg("byte %llu: %d, expected %d", (unsigned long long)(off + i),
						 buf[1 + i], shadow[off + i]);
		}
	}
	free(buf);
}

/*
 * NREQ writes in flight at once over a 256 KiB region: unaligned ones
 * (which overlap everything, so their order is defined) and aligned ones on
 * disjoint 4 KiB blocks (which only overlap unaligned ones).  On a direct
 * dev the result must equal applying them in submission order.  A buffered
 * dev does no read-modify-write and so orders nothing: there every byte
 * must come from one of the writes that cover it (none lost or torn into
 * foreign bytes).
 */
static void concurrent_writes(const char *path, enum aiol_engine e)
{
	struct aiol_open_opts o = { .engine = e };
	const uint64_t region = 256 * 1024;
	struct aiol_dev *dev;
	struct aiol_loop *loop;
	struct aiol_queue *q;
	struct aiol_req *rq = calloc(NREQ, sizeof(*rq));
	int *res = calloc(NREQ, sizeof(int));
	char *shadow = calloc(1, region), *data;
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)e, used_blocks = 0;
	struct aiol_queue_opts qo = { .depth = 64 };

	assert_non_null(rq);
	assert_non_null(res);
	assert_non_null(shadow);
	data = malloc(NREQ * 8192 + 64);
	assert_non_null(data);
	assert_int_equal(aiol_dev_open(path, &o, &dev), 0);
	assert_int_equal(aiol_loop_create(NULL, &loop), 0);
	assert_int_equal(aiol_queue_create(dev, loop, &qo, &q), 0);
	/* start from zeroes */
	rq[0] = (struct aiol_req){ .op = AIOL_OP_WRITE_ZEROES, .len = region, .flags = AIOL_F_NO_UNMAP };
	assert_int_equal(run_req(loop, q, &rq[0]), 0);

	for (int i = 0; i < NREQ; i++) {
		char *d = data + (size_t)i * 8192 + (i % 7);
		uint64_t off, len;

		if (i % 4 == 3 && used_blocks != ~0ull) {
			uint64_t blk;

			do
				blk = rnd(&seed) % 64;
			while (used_blocks & (1ull << blk));
			used_blocks |= 1ull << blk;
			off = blk * 4096;
			len = 4096;
			d = data + (size_t)i * 8192;	/* page aligned: no copy */
		} else {
			off = rnd(&seed) % (region - 8000);
			len = 1 + rnd(&seed) % 7999;
		}
		memset(d, (char)(i + 1), len);
		memcpy(shadow + off, d, len);
		rq[i] = (struct aiol_req){ .op = AIOL_OP_WRITE, .off = off, .len = len, .buf = d,
					   .done = done_cb, .user = &res[i],
					   .flags = i % 16 == 5 ? AIOL_F_FUA : 0 };
		res[i] = 1;
		assert_int_equal(aiol_submit(q, &rq[i]), 0);
	}
	wait_all(loop, q);
	for (int i = 0; i < NREQ; i++)
		assert_int_equal(res[i], 0);
	if (aiol_dev_info(dev)->direct) {
		verify(loop, q, shadow, region);
	} else {
		struct aiol_req r = { .op = AIOL_OP_READ, .len = region, .buf = data };

		assert_int_equal(run_req(loop, q, &r), 0);
		for (uint64_t b = 0; b < region; b++) {
			unsigned char v = (unsigned char)data[b];

			if (!v) {
				assert_int_equal(shadow[b], 0);
				continue;
			}
			assert_true(v <= NREQ);
			assert_true(rq[v - 1].off <= b && b < rq[v - 1].off + rq[v - 1].len);
		}
	}
	aiol_queue_destroy(q);
	aiol_loop_destroy(loop);
	aiol_dev_close(dev);
	free(data);
	free(shadow);
	free(res);
	free(rq);
}

/* One 70 MiB unaligned write and read with misaligned buffers, through a
 * 4 MiB arena: the bounce must be taken in bounded chunks. */
static void big_unaligned(const char *path, enum aiol_engine e)
{
	struct aiol_open_opts o = { .engine = e };
	struct aiol_loop_opts lo = { .arena_bytes = 4 * MiB };
	const uint64_t len = 70 * MiB + 333, off = 12345;
	struct aiol_dev *dev;
	struct aiol_loop *loop;
	struct aiol_queue *q;
	struct aiol_req rq = { .op = AIOL_OP_WRITE, .off = off, .len = len };
	char *a = malloc(len + 1), *b = malloc(len + 3);

	assert_non_null(a);
	assert_non_null(b);
	for (uint64_t i = 0; i < len; i++)
		a[1 + i] = (char)(i * 31 + (i >> 12));
	assert_int_equal(aiol_dev_open(path, &o, &dev), 0);
	assert_int_equal(aiol_loop_create(&lo, &loop), 0);
	assert_int_equal(aiol_queue_create(dev, loop, NULL, &q), 0);
	rq.buf = a + 1;
	assert_int_equal(run_req(loop, q, &rq), 0);
	rq.op = AIOL_OP_READ;
	rq.buf = b + 3;
	memset(b, 0, len + 3);
	assert_int_equal(run_req(loop, q, &rq), 0);
	assert_true(memcmp(a + 1, b + 3, len) == 0);
	assert_int_equal(aiol_loop_buf_used(loop), 0);
	aiol_queue_destroy(q);
	aiol_loop_destroy(loop);
	aiol_dev_close(dev);
	free(b);
	free(a);
}

/* Write-zeroes by every route over > 64 MiB, checked by reading back. */
static void zeroes(const char *path, enum aiol_engine e)
{
	struct aiol_open_opts o = { .engine = e };
	const uint64_t size = 80 * MiB;
	struct aiol_dev *dev;
	struct aiol_loop *loop;
	struct aiol_queue *q;
	struct aiol_req rq = { .op = AIOL_OP_WRITE };
	char *shadow = malloc(size);
	struct { uint64_t off, len; uint32_t flags; } z[] = {
		{ 1000, 70 * MiB, AIOL_F_NO_UNMAP },	/* zero range, or written by hand */
		{ 71 * MiB + 7, 3 * MiB, 0 },		/* punch */
		{ 75 * MiB + 1, 100, AIOL_F_NO_UNMAP | AIOL_F_FUA },
	};
	const struct aiol_dev_info *in;

	assert_non_null(shadow);
	for (uint64_t i = 0; i < size; i++)
		shadow[i] = (char)(0x55 ^ (i >> 9));
	assert_int_equal(aiol_dev_open(path, &o, &dev), 0);
	in = aiol_dev_info(dev);
	assert_int_equal(aiol_loop_create(NULL, &loop), 0);
	assert_int_equal(aiol_queue_create(dev, loop, NULL, &q), 0);
	rq.off = 0;
	rq.len = size;
	rq.buf = shadow;
	assert_int_equal(run_req(loop, q, &rq), 0);
	for (size_t i = 0; i < sizeof(z) / sizeof(z[0]); i++) {
		rq = (struct aiol_req){ .op = AIOL_OP_WRITE_ZEROES, .off = z[i].off, .len = z[i].len,
					.flags = z[i].flags };
		assert_int_equal(run_req(loop, q, &rq), 0);
		memset(shadow + z[i].off, 0, z[i].len);
	}
	/* fast-only: done by fallocate, or refused with -ENOTSUP */
	rq = (struct aiol_req){ .op = AIOL_OP_WRITE_ZEROES, .off = 78 * MiB, .len = MiB,
				.flags = AIOL_F_FAST_ONLY | AIOL_F_NO_UNMAP };
	{
		int r = run_req(loop, q, &rq);

		assert_true(r == 0 || r == -ENOTSUP);
		if (r == 0)
			memset(shadow + 78 * MiB, 0, MiB);
		if (!(in->caps & AIOL_CAP_FAST_ZERO))
			assert_int_equal(r, -ENOTSUP);
	}
	verify(loop, q, shadow, size);
	aiol_queue_destroy(q);
	aiol_loop_destroy(loop);
	aiol_dev_close(dev);
	free(shadow);
}

/*
 * Writers on different threads (each its own loop and queue) of one dev:
 * two write disjoint unaligned pieces of every 512-byte block, so each
 * block is read-modified-written by both at about the same time; a third
 * may overwrite whole blocks.  No piece may be lost: the bytes a writer
 * wrote hold its value or (only where the third wrote) the third's, and
 * bytes no piece covers hold the third's value or zero.
 */
#define XQ_BLOCKS 2048
#define XQ_BS 512

struct xq_arg {
	struct aiol_dev *dev;	/* one dev shared by the threads */
	pthread_barrier_t *start;
	int who;	/* 0, 1: pieces; 2: whole blocks */
};

static void *xq_thread(void *arg)
{
	struct xq_arg *x = arg;
	struct aiol_queue_opts qo = { .depth = 64 };
	struct aiol_loop *loop;
	struct aiol_queue *q;
	struct aiol_req *rq = calloc(XQ_BLOCKS, sizeof(*rq));
	int *res = calloc(XQ_BLOCKS, sizeof(int));
	char *data;

	if (!rq || !res)
		abort();
	if (aiol_loop_create(NULL, &loop) < 0 || aiol_queue_create(x->dev, loop, &qo, &q) < 0)
		abort();
	data = aiol_loop_buf_alloc(loop, XQ_BS);
	memset(data, x->who == 2 ? 0xee : 0x10 + x->who, XQ_BS);
	pthread_barrier_wait(x->start);
	for (int k = 0; k < XQ_BLOCKS; k++) {
		rq[k] = (struct aiol_req){ .op = AIOL_OP_WRITE, .buf = data, .user = &res[k],
					   .done = done_cb };
		if (x->who == 2) {
			rq[k].off = (uint64_t)k * XQ_BS;
			rq[k].len = XQ_BS;
		} else {
			rq[k].off = (uint64_t)k * XQ_BS + 100 + (uint64_t)x->who * 200;
			rq[k].len = 150;
		}
		if (aiol_submit(q, &rq[k]) < 0)
			abort();
	}
	while (aiol_queue_inflight(q))
		aiol_loop_run_once(loop, true);
	for (int k = 0; k < XQ_BLOCKS; k++)
		if (res[k])
			abort();
	aiol_loop_buf_free(loop, data, XQ_BS);
	aiol_queue_destroy(q);
	aiol_loop_destroy(loop);
	free(res);
	free(rq);
	return NULL;
}

static void cross_queue(const char *path, enum aiol_engine e)
{
	struct aiol_open_opts o = { .engine = e };
	char *img = malloc(XQ_BLOCKS * XQ_BS);
	struct aiol_dev *dev;
	int fd;

	assert_non_null(img);
	for (int with_whole = 0; with_whole < 2; with_whole++) {
		struct xq_arg a[3];
		pthread_t t[3];
		pthread_barrier_t start;
		int n = with_whole ? 3 : 2;

		fd = open(path, O_RDWR);
		assert_true(fd >= 0);
		memset(img, 0, XQ_BLOCKS * XQ_BS);
		assert_int_equal(pwrite(fd, img, XQ_BLOCKS * XQ_BS, 0), XQ_BLOCKS * XQ_BS);
		assert_int_equal(fdatasync(fd), 0);
		assert_int_equal(aiol_dev_open(path, &o, &dev), 0);
		pthread_barrier_init(&start, NULL, (unsigned int)n);
		for (int i = 0; i < n; i++) {
			a[i] = (struct xq_arg){ .dev = dev, .who = i, .start = &start };
			assert_int_equal(pthread_create(&t[i], NULL, xq_thread, &a[i]), 0);
		}
		for (int i = 0; i < n; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&start);
		aiol_dev_close(dev);
		assert_int_equal(pread(fd, img, XQ_BLOCKS * XQ_BS, 0), XQ_BLOCKS * XQ_BS);
		close(fd);
		for (int k = 0; k < XQ_BLOCKS; k++) {
			const unsigned char *b = (const unsigned char *)img + (size_t)k * XQ_BS;

			for (int i = 0; i < XQ_BS; i++) {
				unsigned int want = i >= 100 && i < 250 ? 0x10 :
						    i >= 300 && i < 450 ? 0x11 : 0;

				if (b[i] == want || (with_whole && b[i] == 0xee))
					continue;
				fail_msg("%s%s: block %d byte %d is 0x%x, want 0x%x", aiol_engine_name(e),
					 with_whole ? " with whole-block writes" : "", k, i, b[i], want);
			}
		}
	}
	free(img);
}

static void for_engines(void **state, void (*fn)(const char *, enum aiol_engine))
{
	struct fixture *f = *state;

	if (!f->path[0]) {
		print_message("# skip: %s\n", f->is_bdev ? "no scratch block device (AIOLOOP_TEST_BDEV unset, and no loop device could be attached)" :
			      "no scratch file on a file system of this kind here");
		skip();
		return;
	}
	for (int e = AIOL_ENGINE_URING; e <= AIOL_ENGINE_SYNC; e++)
		fn(f->path, (enum aiol_engine)e);
}

static void test_concurrent_writes(void **state)
{
	for_engines(state, concurrent_writes);
}

static void test_big_unaligned(void **state)
{
	for_engines(state, big_unaligned);
}

static void test_zeroes(void **state)
{
	for_engines(state, zeroes);
}

static void test_cross_queue(void **state)
{
	for_engines(state, cross_queue);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_concurrent_writes, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writes, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_big_unaligned, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_big_unaligned, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_zeroes, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_zeroes, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_cross_queue, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_cross_queue, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writes, setup_bdev, teardown),
		cmocka_unit_test_setup_teardown(test_big_unaligned, setup_bdev, teardown),
		cmocka_unit_test_setup_teardown(test_zeroes, setup_bdev, teardown),
		cmocka_unit_test_setup_teardown(test_cross_queue, setup_bdev, teardown),
	};

	aiol_log_setup("test-rmw", -1, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
