// SPDX-License-Identifier: MIT
/*
 * Unit tests of opening and probing a backing: the visible window (offset,
 * size limit, their edges and overflow), bad paths (missing, directory,
 * character device), direct=auto|on|off on tmpfs (no real direct I/O) and
 * on the disk file system under /var/tmp (where O_DIRECT works), the
 * logical block size rule, read-only, and the capabilities reported.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <cmocka.h>

#include "aioloop/engine.h"
#include "aioloop/log.h"
#include "engine-util.h"
#include "run-req.h"

#define MiB (1024u * 1024u)

struct fixture {
	char path[256];
};

/* Create a sparse file of size bytes in dir; "" when dir is unusable. */
static int make_file(char *path, size_t n, const char *dir, uint64_t size)
{
	int fd;

	snprintf(path, n, "%s/aioloop-probe-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0) {
		path[0] = 0;
		return -errno;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		unlink(path);
		path[0] = 0;
		return -errno;
	}
	close(fd);
	return 0;
}

static const char *disk_dir(void)
{
	const char *t = getenv("TESTTMP");

	return t && *t ? t : "/var/tmp";
}

/* Skip the running test (cmocka's skip() leaves it) when the disk
 * directory has no O_DIRECT. */
static void skip_without_direct(void)
{
	if (eng_dir_is_tmpfs(disk_dir()) || !eng_dir_has_odirect(disk_dir())) {
		print_message("# skip: no O_DIRECT on the file system of %s\n", disk_dir());
		skip();
	}
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f && f->path[0])
		unlink(f->path);
	free(f);
	return 0;
}

static int setup_disk(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	return f && make_file(f->path, sizeof(f->path), disk_dir(), 16 * MiB) == 0 ? 0 : -1;
}

static int setup_shm(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	*state = f;
	if (!f)
		return -1;
	if (eng_dir_is_tmpfs("/dev/shm"))
		make_file(f->path, sizeof(f->path), "/dev/shm", 16 * MiB);
	return 0;
}

static void test_window(void **state)
{
	struct fixture *f = *state;
	struct aiol_open_opts o = { .direct = AIOL_DIRECT_OFF };
	struct aiol_dev *dev;
	const struct aiol_dev_info *in;

	/* whole file */
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	in = aiol_dev_info(dev);
	assert_int_equal(in->size, 16 * MiB);
	assert_int_equal(in->backing_size, 16 * MiB);
	assert_int_equal(in->offset, 0);
	assert_false(in->direct);
	assert_int_equal(in->dio_align, 1);
	assert_int_equal(in->block_size, 512);
	aiol_dev_close(dev);

	/* offset + size limit */
	o.offset = MiB;
	o.sizelimit = 2 * MiB;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_int_equal(aiol_dev_info(dev)->size, 2 * MiB);
	assert_int_equal(aiol_dev_info(dev)->offset, MiB);
	aiol_dev_close(dev);

	/* a size limit past the end is clipped, like lo_sizelimit */
	o.sizelimit = 100 * MiB;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_int_equal(aiol_dev_info(dev)->size, 15 * MiB);
	aiol_dev_close(dev);

	/* offset + size limit overflowing 64 bits */
	o.offset = 1;
	o.sizelimit = UINT64_MAX;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_int_equal(aiol_dev_info(dev)->size, 16 * MiB - 1);
	aiol_dev_close(dev);

	/* offset at or past the end: nothing visible */
	o.sizelimit = 0;
	o.offset = 16 * MiB;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), -EINVAL);
	assert_null(dev);
	o.offset = UINT64_MAX;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), -EINVAL);

	/* last byte */
	o.offset = 16 * MiB - 1;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_int_equal(aiol_dev_info(dev)->size, 1);
	aiol_dev_close(dev);
}

static void test_bad_paths(void **state)
{
	struct aiol_dev *dev;
	char missing[300];

	(void)state;
	snprintf(missing, sizeof(missing), "%s/aioloop-no-such-file-%d", disk_dir(), (int)getpid());
	assert_int_equal(aiol_dev_open(missing, NULL, &dev), -ENOENT);
	assert_int_equal(aiol_dev_open(disk_dir(), NULL, &dev), -EISDIR);
	assert_int_equal(aiol_dev_open("/dev/null", NULL, &dev), -EINVAL);
	assert_int_equal(aiol_dev_open("", NULL, &dev), -EINVAL);
	assert_null(dev);
}

static void test_bad_opts(void **state)
{
	struct fixture *f = *state;
	struct aiol_open_opts o = { .block_size = 1000 };
	struct aiol_dev *dev;

	assert_int_equal(aiol_dev_open(f->path, &o, &dev), -EINVAL);
	o.block_size = 4096;
	o.direct = AIOL_DIRECT_OFF;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_int_equal(aiol_dev_info(dev)->block_size, 4096);
	aiol_dev_close(dev);
}

static void test_tmpfs_direct(void **state)
{
	struct fixture *f = *state;
	struct aiol_open_opts o = { .direct = AIOL_DIRECT_AUTO };
	struct aiol_dev *dev;

	if (!f->path[0]) {
		print_message("# skip: /dev/shm is not a tmpfs here\n");
		skip();
		return;
	}
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_false(aiol_dev_info(dev)->direct);
	assert_int_equal(aiol_dev_info(dev)->dio_align, 1);
	assert_int_equal(aiol_dev_info(dev)->block_size, 512);
	/* tmpfs punches holes but has no ZERO_RANGE */
	assert_true(aiol_dev_info(dev)->caps & AIOL_CAP_DISCARD);
	assert_true(aiol_dev_info(dev)->caps & AIOL_CAP_WRITE_ZEROES);
	aiol_dev_close(dev);

	o.direct = AIOL_DIRECT_ON;
	dev = (struct aiol_dev *)&o;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), -EINVAL);
	assert_null(dev);

	/* aio needs direct I/O: the threads engine is used instead */
	o.direct = AIOL_DIRECT_AUTO;
	o.engine = AIOL_ENGINE_AIO;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_int_equal(aiol_dev_info(dev)->engine, AIOL_ENGINE_THREADS);
	aiol_dev_close(dev);
}

static void test_disk_direct(void **state)
{
	struct fixture *f = *state;
	struct aiol_open_opts o = { .direct = AIOL_DIRECT_AUTO };
	const struct aiol_dev_info *in;
	struct aiol_dev *dev;
	unsigned int a;

	skip_without_direct();
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	in = aiol_dev_info(dev);
	assert_true(in->direct);
	a = in->dio_align;
	assert_true(a >= 512 && !(a & (a - 1)));
	assert_true(in->dio_mem_align >= 1 && !(in->dio_mem_align & (in->dio_mem_align - 1)));
	assert_int_equal(in->block_size, a > 512 ? a : 512);
	assert_true(in->caps & AIOL_CAP_FLUSH);
	assert_true(in->caps & AIOL_CAP_FUA);
	assert_true(in->caps & AIOL_CAP_BLOCK_STATUS);
	aiol_dev_close(dev);

	/* an offset that direct I/O cannot use: auto falls back, on fails */
	o.offset = 100;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_false(aiol_dev_info(dev)->direct);
	aiol_dev_close(dev);
	o.direct = AIOL_DIRECT_ON;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), -EINVAL);

	/* aligned offset with direct=on works */
	o.offset = 64 * 1024;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_true(aiol_dev_info(dev)->direct);
	aiol_dev_close(dev);

	/* direct=off is buffered */
	o.direct = AIOL_DIRECT_OFF;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_false(aiol_dev_info(dev)->direct);
	aiol_dev_close(dev);
}

static void test_disk_unaligned_end(void **state)
{
	struct fixture *f = *state;
	struct aiol_open_opts o = { .direct = AIOL_DIRECT_AUTO };
	struct aiol_dev *dev;
	unsigned int a;

	skip_without_direct();
	/* A window whose end is mid-block is rounded down to whole direct
	 * I/O blocks: a read-modify-write of the last partial block would
	 * rewrite bytes past the window (or grow the file). */
	assert_int_equal(truncate(f->path, 16 * MiB + 100), 0);
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_true(aiol_dev_info(dev)->direct);
	a = aiol_dev_info(dev)->dio_align;
	assert_int_equal(aiol_dev_info(dev)->size, 16 * MiB);
	assert_int_equal(aiol_dev_info(dev)->backing_size, 16 * MiB + 100);
	aiol_dev_close(dev);
	o.sizelimit = MiB + 1000;
	o.offset = 64 * 1024;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_true(aiol_dev_info(dev)->direct);
	assert_int_equal(aiol_dev_info(dev)->size, (MiB + 1000) / a * a);
	aiol_dev_close(dev);
	/* buffered: byte-exact */
	o.direct = AIOL_DIRECT_OFF;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_int_equal(aiol_dev_info(dev)->size, MiB + 1000);
	aiol_dev_close(dev);
	/* a window smaller than one block cannot be direct */
	o.sizelimit = 100;
	o.direct = AIOL_DIRECT_AUTO;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_false(aiol_dev_info(dev)->direct);
	assert_int_equal(aiol_dev_info(dev)->size, 100);
	aiol_dev_close(dev);
	o.direct = AIOL_DIRECT_ON;
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), -EINVAL);
}

/* Make path unwritable: mode 0444, or for root (who ignores modes) the
 * immutable attribute.  Returns false when neither can be done here. */
static bool make_unwritable(const char *path, bool undo)
{
	int fd, attr, ret;

	if (geteuid() != 0)
		return chmod(path, undo ? 0644 : 0444) == 0;
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	ret = ioctl(fd, FS_IOC_GETFLAGS, &attr);
	if (ret == 0) {
		attr = undo ? attr & ~FS_IMMUTABLE_FL : attr | FS_IMMUTABLE_FL;
		ret = ioctl(fd, FS_IOC_SETFLAGS, &attr);
	}
	close(fd);
	return ret == 0;
}

static void test_forced_read_only(void **state)
{
	struct fixture *f = *state;
	struct aiol_open_opts o = { .direct = AIOL_DIRECT_OFF };
	struct aiol_dev *dev;

	if (!make_unwritable(f->path, false)) {
		print_message("# skip: cannot make a file unwritable here\n");
		skip();
		return;
	}
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	make_unwritable(f->path, true);
	assert_true(aiol_dev_info(dev)->read_only);
	assert_int_equal(aiol_dev_info(dev)->caps & (AIOL_CAP_DISCARD | AIOL_CAP_FLUSH), 0);
	aiol_dev_close(dev);
}

static void test_read_only(void **state)
{
	struct fixture *f = *state;
	struct aiol_open_opts o = { .read_only = true, .direct = AIOL_DIRECT_OFF };
	struct aiol_dev *dev;
	struct aiol_loop *loop;
	struct aiol_queue *q;
	char buf[512];
	struct aiol_req rq = { .op = AIOL_OP_WRITE, .len = 512, .buf = buf };

	memset(buf, 1, sizeof(buf));
	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_true(aiol_dev_info(dev)->read_only);
	assert_false(aiol_dev_info(dev)->caps & (AIOL_CAP_DISCARD | AIOL_CAP_WRITE_ZEROES | AIOL_CAP_FUA));
	assert_int_equal(aiol_loop_create(NULL, &loop), 0);
	for (int e = AIOL_ENGINE_URING; e <= AIOL_ENGINE_SYNC; e++) {
		aiol_dev_close(dev);
		o.engine = (enum aiol_engine)e;
		assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
		assert_int_equal(aiol_queue_create(dev, loop, NULL, &q), 0);
		rq.op = AIOL_OP_WRITE;
		assert_int_equal(run_req(loop, q, &rq), -EPERM);
		rq.op = AIOL_OP_DISCARD;
		assert_int_equal(run_req(loop, q, &rq), -EPERM);
		rq.op = AIOL_OP_WRITE_ZEROES;
		assert_int_equal(run_req(loop, q, &rq), -EPERM);
		rq.op = AIOL_OP_READ;
		assert_int_equal(run_req(loop, q, &rq), 0);
		aiol_queue_destroy(q);
	}
	aiol_loop_destroy(loop);
	aiol_dev_close(dev);
}

/* Range checks through a window: the dev offset is added, the visible
 * size bounds every op, and errors reach done() on every engine. */
static void test_ranges(void **state)
{
	struct fixture *f = *state;
	struct aiol_open_opts o = { .offset = MiB, .sizelimit = MiB, .direct = AIOL_DIRECT_AUTO };
	struct aiol_dev *dev;
	struct aiol_loop *loop;
	struct aiol_queue *q;
	struct aiol_extent ext[4];
	char *buf = malloc(MiB), *chk = malloc(4096);
	int fd;

	assert_non_null(buf);
	assert_non_null(chk);
	assert_int_equal(aiol_loop_create(NULL, &loop), 0);
	for (int e = AIOL_ENGINE_URING; e <= AIOL_ENGINE_SYNC; e++) {
		struct aiol_req rq = { .op = AIOL_OP_WRITE, .off = 4096, .len = 4096, .buf = buf };

		o.engine = (enum aiol_engine)e;
		assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
		assert_int_equal(aiol_queue_create(dev, loop, NULL, &q), 0);
		memset(buf, 'a' + e, 4096);
		assert_int_equal(run_req(loop, q, &rq), 0);
		/* landed at offset + 4096 in the backing */
		fd = open(f->path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, chk, 4096, MiB + 4096), 4096);
		close(fd);
		assert_memory_equal(chk, buf, 4096);

		rq.off = MiB - 512;
		rq.len = 1024;
		assert_int_equal(run_req(loop, q, &rq), -ENOSPC);
		rq.off = UINT64_MAX - 10;
		rq.len = 100;
		assert_int_equal(run_req(loop, q, &rq), -ENOSPC);
		rq.op = AIOL_OP_READ;
		assert_int_equal(run_req(loop, q, &rq), -EINVAL);
		rq.off = MiB;
		rq.len = 1;
		assert_int_equal(run_req(loop, q, &rq), -EINVAL);
		rq.len = 0;
		assert_int_equal(run_req(loop, q, &rq), 0);
		rq.op = AIOL_OP_WRITE_ZEROES;
		rq.off = MiB - 4096;
		rq.len = 8192;
		assert_int_equal(run_req(loop, q, &rq), -ENOSPC);
		rq.op = AIOL_OP_DISCARD;
		assert_int_equal(run_req(loop, q, &rq), -EINVAL);
		rq.op = AIOL_OP_CACHE;
		assert_int_equal(run_req(loop, q, &rq), -EINVAL);
		rq.op = AIOL_OP_BLOCK_STATUS;
		rq.ext = ext;
		rq.ext_max = 4;
		assert_int_equal(run_req(loop, q, &rq), -EINVAL);
		rq.ext_max = 0;
		rq.off = 0;
		assert_int_equal(run_req(loop, q, &rq), -EINVAL);
		rq.op = 99;
		assert_int_equal(run_req(loop, q, &rq), -EINVAL);
		rq.op = AIOL_OP_READ;
		rq.flags = 1u << 20;
		assert_int_equal(run_req(loop, q, &rq), -EINVAL);
		rq.flags = 0;
		/* the last byte, and a whole-window read */
		rq.off = MiB - 1;
		rq.len = 1;
		rq.buf = buf;
		assert_int_equal(run_req(loop, q, &rq), 0);
		rq.off = 0;
		rq.len = MiB;
		assert_int_equal(run_req(loop, q, &rq), 0);
		assert_int_equal(buf[4096], 'a' + e);
		/* block status: one window-clipped report */
		rq.op = AIOL_OP_BLOCK_STATUS;
		rq.ext = ext;
		rq.ext_max = 4;
		assert_int_equal(run_req(loop, q, &rq), 0);
		assert_true(rq.ext_count >= 1 && rq.ext_count <= 4);
		{
			uint64_t sum = 0;

			for (uint32_t i = 0; i < rq.ext_count; i++)
				sum += ext[i].len;
			assert_true(sum <= MiB);
			if (rq.ext_count < 4)
				assert_int_equal(sum, MiB);
		}
		assert_int_equal(aiol_queue_inflight(q), 0);
		aiol_queue_destroy(q);
		aiol_dev_close(dev);
	}
	aiol_loop_destroy(loop);
	free(chk);
	free(buf);
}

/* A done() that resubmits at once, on the sync engine (which completes
 * through deferred work), must not keep aiol_loop_run_once() from
 * returning. */
struct chain {
	struct aiol_req req;
	struct aiol_queue *q;
	int left;
	int res;
};

static void chain_done(struct aiol_req *req, int res)
{
	struct chain *c = (struct chain *)req;

	c->res = res;
	if (res == 0 && c->left > 0) {
		c->left--;
		assert_int_equal(aiol_submit(c->q, req), 0);
	}
}

static void test_sync_resubmit(void **state)
{
	struct fixture *f = *state;
	struct aiol_open_opts o = { .engine = AIOL_ENGINE_SYNC, .direct = AIOL_DIRECT_OFF };
	struct aiol_dev *dev;
	struct aiol_loop *loop;
	struct chain c;
	char buf[512];
	int iterations = 0;

	assert_int_equal(aiol_dev_open(f->path, &o, &dev), 0);
	assert_int_equal(aiol_loop_create(NULL, &loop), 0);
	assert_int_equal(aiol_queue_create(dev, loop, NULL, &c.q), 0);
	c.req = (struct aiol_req){ .op = AIOL_OP_READ, .len = sizeof(buf), .buf = buf,
				   .done = chain_done };
	c.left = 1000;
	c.res = 1;
	assert_int_equal(aiol_submit(c.q, &c.req), 0);
	while (aiol_queue_inflight(c.q)) {
		assert_true(aiol_loop_run_once(loop, true) >= 0);
		iterations++;
	}
	assert_int_equal(c.res, 0);
	assert_int_equal(c.left, 0);
	assert_true(iterations > 100);	/* one completion per iteration */
	aiol_queue_destroy(c.q);
	aiol_loop_destroy(loop);
	aiol_dev_close(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_window, setup_disk, teardown),
		cmocka_unit_test(test_bad_paths),
		cmocka_unit_test_setup_teardown(test_bad_opts, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_tmpfs_direct, setup_shm, teardown),
		cmocka_unit_test_setup_teardown(test_disk_direct, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_disk_unaligned_end, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_read_only, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_forced_read_only, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_ranges, setup_disk, teardown),
		cmocka_unit_test_setup_teardown(test_sync_resubmit, setup_disk, teardown),
	};

	aiol_log_setup("test-probe", AIOL_LOG_ERR - 1, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
