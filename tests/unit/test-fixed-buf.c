// SPDX-License-Identifier: MIT
/*
 * Unit tests of AIOL_F_FIXED_BUF: a loop created with kernel_bufs keeps
 * the arena in slot 0 and empty slots after it; a read or write on a
 * buffer installed in such a slot (here by the test, as ublk's kernel
 * does with a request's pages) goes through READ_FIXED/WRITE_FIXED with
 * that index and moves the right bytes; growing the arena's registered
 * prefix replaces slot 0 alone, leaving the other slots as they were; the
 * engine refuses the flag where it cannot honour it (other engines, ops
 * without data, requests that would need a read-modify-write) with
 * -EINVAL through done().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "engine-util.h"

#define FILE_SIZE (1u << 20)
#define SLOTS 4

struct fx {
	char path[256];
	struct eng_env e;
	uint8_t *want; /* the file's contents */
};

static int env_open(struct fx *f, enum aiol_engine engine, enum aiol_direct direct,
		    unsigned int block_size)
{
	struct aiol_loop_opts lo = {.kernel_bufs = SLOTS};
	struct aiol_open_opts oo = {.engine = engine, .direct = direct, .block_size = block_size};
	int ret;

	memset(&f->e, 0, sizeof(f->e));
	ret = aiol_loop_create(&lo, &f->e.loop);
	if (ret < 0)
		return ret;
	ret = aiol_dev_open(f->path, &oo, &f->e.dev);
	if (ret == 0)
		ret = aiol_queue_create(f->e.dev, f->e.loop, NULL, &f->e.q);
	if (ret < 0) {
		eng_env_close(&f->e);
		return ret;
	}
	f->e.info = aiol_dev_info(f->e.dev);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->path, sizeof(f->path), "%s/aioloop-fixed-%d.img", eng_tmpdir(), (int)getpid());
	f->want = malloc(FILE_SIZE);
	assert_non_null(f->want);
	assert_int_equal(eng_make_file(f->path, FILE_SIZE, 42, f->want), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	eng_env_close(&f->e);
	unlink(f->path);
	free(f->want);
	free(f);
	return 0;
}

/* Install buf (len bytes) in the ring's buffer slot. */
static void install(struct fx *f, unsigned int slot, void *buf, size_t len)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};

	assert_int_equal(
	    io_uring_register_buffers_update_tag(aiol_loop_ring(f->e.loop), slot, &iov, NULL, 1),
	    1);
}

/* One request on slot's buffer at buf; returns done()'s res. */
static int run_fixed(struct fx *f, uint8_t op, uint64_t off, uint64_t len, void *buf, uint16_t slot)
{
	struct eng_op o;

	eng_op_init(&o, op, off, len, buf, AIOL_F_FIXED_BUF);
	o.req.buf_index = slot;
	assert_int_equal(eng_submit(&f->e, &o), 0);
	assert_int_equal(eng_drain(&f->e, 10000), 0);
	assert_true(o.done);
	return o.res;
}

static void check_rw(struct fx *f)
{
	size_t len = 256u << 10;
	uint8_t *buf = NULL;
	uint64_t seed = 7;

	assert_int_equal(posix_memalign((void **)&buf, 4096, len), 0);
	install(f, 2, buf, len);
	assert_true(aiol_dev_fixed_buf_ok(f->e.dev, f->e.info->block_size));
	/* read 64 KiB at 128 KiB into the second half of the buffer */
	memset(buf, 0, len);
	assert_int_equal(run_fixed(f, AIOL_OP_READ, 128u << 10, 64u << 10, buf + len / 2, 2), 0);
	assert_memory_equal(buf + len / 2, f->want + (128u << 10), 64u << 10);
	/* write the whole buffer at 512 KiB */
	eng_rand_fill(&seed, buf, len);
	assert_int_equal(run_fixed(f, AIOL_OP_WRITE, 512u << 10, len, buf, 2), 0);
	assert_int_equal(eng_file_cmp(f->path, 512u << 10, buf, len), -1);
	free(buf);
}

static void test_buffered(void **state)
{
	struct fx *f = *state;

	assert_int_equal(env_open(f, AIOL_ENGINE_URING, AIOL_DIRECT_OFF, 0), 0);
	check_rw(f);
}

static void test_direct(void **state)
{
	struct fx *f = *state;
	uint8_t *buf = NULL;

	if (!eng_dir_has_odirect(eng_tmpdir()) || eng_dir_is_tmpfs(eng_tmpdir()))
		skip();
	assert_int_equal(env_open(f, AIOL_ENGINE_URING, AIOL_DIRECT_ON, 0), 0);
	check_rw(f);
	/* a request the direct fd cannot take as it is would need a bounce */
	if (f->e.info->dio_align > 512) {
		assert_int_equal(posix_memalign((void **)&buf, 4096, 8192), 0);
		install(f, 1, buf, 8192);
		assert_false(aiol_dev_fixed_buf_ok(f->e.dev, 512));
		assert_int_equal(run_fixed(f, AIOL_OP_READ, 512, 512, buf, 1), -EINVAL);
		free(buf);
	}
}

/* The arena's registered prefix (8 MiB at first) grows when a buffer does
 * not fit: slot 0 is replaced with the larger one and a buffer installed
 * in another slot stays where it was. */
static void test_arena_grows(void **state)
{
	struct fx *f = *state;
	size_t len = 64u << 10, big = 12u << 20;
	uint8_t *buf = NULL, *a;

	assert_int_equal(env_open(f, AIOL_ENGINE_URING, AIOL_DIRECT_OFF, 0), 0);
	assert_int_equal(posix_memalign((void **)&buf, 4096, len), 0);
	install(f, 3, buf, len);
	a = aiol_loop_buf_alloc(f->e.loop, big);
	assert_non_null(a);
	if (aiol_loop_buf_index(f->e.loop, a + big - 1) != 0) {
		/* the ring refused the larger registration (RLIMIT_MEMLOCK) */
		aiol_loop_buf_free(f->e.loop, a, big);
		free(buf);
		skip();
	}
	/* slot 3 is still buf */
	memset(buf, 0, len);
	assert_int_equal(run_fixed(f, AIOL_OP_READ, len, len, buf, 3), 0);
	assert_memory_equal(buf, f->want + len, len);
	/* slot 0 now covers the arena past its first prefix */
	memset(a + big - len, 0, len);
	assert_int_equal(run_fixed(f, AIOL_OP_READ, 2 * len, len, a + big - len, 0), 0);
	assert_memory_equal(a + big - len, f->want + 2 * len, len);
	aiol_loop_buf_free(f->e.loop, a, big);
	free(buf);
	check_rw(f);
}

static void test_refused(void **state)
{
	struct fx *f = *state;
	struct eng_op o;

	assert_int_equal(env_open(f, AIOL_ENGINE_THREADS, AIOL_DIRECT_OFF, 0), 0);
	assert_false(aiol_dev_fixed_buf_ok(f->e.dev, 4096));
	assert_int_equal(run_fixed(f, AIOL_OP_READ, 0, 4096, NULL, 1), -EINVAL);
	eng_env_close(&f->e);

	assert_int_equal(env_open(f, AIOL_ENGINE_URING, AIOL_DIRECT_OFF, 0), 0);
	eng_op_init(&o, AIOL_OP_FLUSH, 0, 0, NULL, AIOL_F_FIXED_BUF);
	assert_int_equal(eng_submit(&f->e, &o), 0);
	assert_int_equal(eng_drain(&f->e, 10000), 0);
	assert_int_equal(o.res, -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_buffered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_direct, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_arena_grows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
	};

	aiol_log_setup("test-fixed-buf", AIOL_LOG_WARN, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
