// SPDX-License-Identifier: MIT
/*
 * Helpers for the engine tests (see engine-util.h): they wrap the public
 * engine and loop API the way a frontend uses it, and record violations of
 * the completion contract (done() inside aiol_submit(), done() twice) so
 * every test can assert there were none.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "engine-util.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int eng_env_open(struct eng_env *e, const char *path,
		 const struct aiol_open_opts *opts, size_t arena_bytes,
		 unsigned int depth)
{
	struct aiol_loop_opts lo = { .arena_bytes = arena_bytes };
	struct aiol_queue_opts qo = { .depth = depth };
	int ret;

	memset(e, 0, sizeof(*e));
	ret = aiol_loop_create(&lo, &e->loop);
	if (ret < 0)
		goto err;
	ret = aiol_dev_open(path, opts, &e->dev);
	if (ret < 0)
		goto err_loop;
	ret = aiol_queue_create(e->dev, e->loop, &qo, &e->q);
	if (ret < 0)
		goto err_dev;
	e->info = aiol_dev_info(e->dev);
	return 0;

err_dev:
	aiol_dev_close(e->dev);
err_loop:
	aiol_loop_destroy(e->loop);
err:
	memset(e, 0, sizeof(*e));
	return ret;
}

void eng_env_close(struct eng_env *e)
{
	if (e->loop && e->tick_armed) {
		struct io_uring_sqe *sqe = aiol_loop_sqe(e->loop, NULL);

		io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&e->tick_ev, 0);
		while (e->tick_armed)
			if (aiol_loop_run_once(e->loop, true) < 0)
				break;
	}
	if (e->q)
		aiol_queue_destroy(e->q);
	if (e->dev)
		aiol_dev_close(e->dev);
	if (e->loop)
		aiol_loop_destroy(e->loop);
	memset(e, 0, sizeof(*e));
}

static void op_done(struct aiol_req *req, int res)
{
	struct eng_op *op = aiol_container_of(req, struct eng_op, req);
	struct eng_env *e = op->env;

	if (e->in_submit)
		e->done_in_submit++;
	if (op->done) {
		e->double_done++;
		return;
	}
	op->done = true;
	op->res = res;
	op->seq = ++e->completed;
	e->pending--;
}

void eng_op_init(struct eng_op *op, uint8_t opcode, uint64_t off, uint64_t len,
		 void *buf, uint32_t flags)
{
	memset(op, 0, sizeof(*op));
	op->req.op = opcode;
	op->req.off = off;
	op->req.len = len;
	op->req.buf = buf;
	op->req.flags = flags;
	op->req.done = op_done;
	op->req.user = op;
	op->res = 1;	/* no errno and not success: "never completed" */
}

int eng_submit(struct eng_env *e, struct eng_op *op)
{
	int ret;

	op->env = e;
	op->done = false;
	e->pending++;
	e->in_submit = true;
	ret = aiol_submit(e->q, &op->req);
	e->in_submit = false;
	if (ret < 0)
		e->pending--;
	return ret;
}

static void tick_done(struct aiol_event *ev, int res, unsigned int flags)
{
	struct eng_env *e = aiol_container_of(ev, struct eng_env, tick_ev);

	(void)res;
	(void)flags;
	e->tick_armed = false;
}

/* A 100 ms timeout on the ring, so that a waiting run_once() returns even
 * when the engine has lost a request and the deadline can be checked. */
static void tick_arm(struct eng_env *e)
{
	struct io_uring_sqe *sqe;

	if (e->tick_armed)
		return;
	e->tick_ev.fn = tick_done;
	e->tick_ts.tv_sec = 0;
	e->tick_ts.tv_nsec = 100 * 1000 * 1000;
	sqe = aiol_loop_sqe(e->loop, &e->tick_ev);
	io_uring_prep_timeout(sqe, &e->tick_ts, 0, 0);
	e->tick_armed = true;
}

int eng_drain(struct eng_env *e, unsigned int timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;

	while (e->pending) {
		int ret;

		if (now_ms() > deadline)
			return -ETIMEDOUT;
		tick_arm(e);
		ret = aiol_loop_run_once(e->loop, true);
		if (ret < 0 && ret != -EINTR)
			return ret;
	}
	return 0;
}

int eng_run(struct eng_env *e, uint8_t opcode, uint64_t off, uint64_t len,
	    void *buf, uint32_t flags)
{
	struct eng_op op;
	int ret;

	eng_op_init(&op, opcode, off, len, buf, flags);
	ret = eng_submit(e, &op);
	if (ret < 0)
		return ret;
	ret = eng_drain(e, 60000);
	if (ret < 0)
		return ret;
	return op.res;
}

uint64_t eng_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

uint64_t eng_rand_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
	uint64_t span = hi - lo + 1;

	if (span == 0)		/* the whole 64-bit range */
		return eng_rand(state);
	return lo + eng_rand(state) % span;
}

void eng_rand_fill(uint64_t *state, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len >= 8) {
		uint64_t v = eng_rand(state);

		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = eng_rand(state);

		memcpy(p, &v, len);
	}
}

int eng_make_file(const char *path, uint64_t size, uint64_t seed, void *copy_out)
{
	uint64_t st = seed | 1;
	size_t chunk = 1u << 20;
	uint8_t *buf;
	int fd, ret = 0;

	buf = malloc(chunk);
	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	for (uint64_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? (size_t)(size - off) : chunk;

		eng_rand_fill(&st, buf, n);
		if (copy_out)
			memcpy((uint8_t *)copy_out + off, buf, n);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			ret = errno ? -errno : -EIO;
			goto out_close;
		}
	}
	if (fsync(fd) < 0)
		ret = -errno;
out_close:
	close(fd);
out:
	free(buf);
	return ret;
}

int eng_read_file(const char *path, uint64_t off, size_t len, void *out, bool direct)
{
	size_t done = 0, bounce_len = 1u << 20;
	uint8_t *bounce = NULL;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (fd < 0)
		return -errno;
	if (direct) {
		/* O_DIRECT wants aligned offsets, lengths and memory: read
		 * whole aligned 1 MiB pieces and copy out the wanted part. */
		if (posix_memalign((void **)&bounce, 4096, bounce_len)) {
			ret = -ENOMEM;
			goto out;
		}
		while (done < len) {
			uint64_t pos = off + done;
			uint64_t base = pos & ~(uint64_t)4095;
			size_t skip = (size_t)(pos - base), n;
			ssize_t r = pread(fd, bounce, bounce_len, (off_t)base);

			if (r < 0) {
				ret = -errno;
				goto out;
			}
			if ((size_t)r <= skip) {
				ret = -EIO;	/* past end of file */
				goto out;
			}
			n = (size_t)r - skip;
			if (n > len - done)
				n = len - done;
			memcpy((uint8_t *)out + done, bounce + skip, n);
			done += n;
		}
	} else {
		while (done < len) {
			ssize_t r = pread(fd, (uint8_t *)out + done, len - done,
					  (off_t)(off + done));

			if (r < 0) {
				ret = -errno;
				goto out;
			}
			if (r == 0) {
				ret = -EIO;
				goto out;
			}
			done += (size_t)r;
		}
	}
out:
	free(bounce);
	close(fd);
	return ret;
}

int64_t eng_file_cmp(const char *path, uint64_t off, const void *want, size_t len)
{
	uint8_t *got = malloc(len ? len : 1);
	int64_t at = -1;

	if (!got)
		return -2;
	if (eng_read_file(path, off, len, got, false) < 0) {
		free(got);
		return -2;
	}
	if (memcmp(got, want, len)) {
		for (size_t i = 0; i < len; i++) {
			if (got[i] != ((const uint8_t *)want)[i]) {
				at = (int64_t)i;
				break;
			}
		}
	}
	free(got);
	return at;
}

bool eng_dir_has_odirect(const char *dir)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/aioloop-odirect-probe.XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		return false;
	close(fd);
	fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	unlink(path);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

bool eng_dir_is_tmpfs(const char *dir)
{
	struct statfs sfs;

	return statfs(dir, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC;
}

const char *eng_tmpdir(void)
{
	const char *d = getenv("TMPDIR");

	return d && *d ? d : "/var/tmp";
}
