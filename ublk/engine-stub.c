// SPDX-License-Identifier: MIT
/*
 * Stand-in for the engine (aioloop/engine.h) until lib/ provides it: the
 * synchronous path only (pread/pwrite/fdatasync/fallocate on the calling
 * thread, completion deferred to the next loop iteration).  Enough to run
 * the ublk and kernel-NBD frontends end to end; removed from the build as
 * soon as the real engine is merged.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "aioloop/engine.h"
#include "aioloop/log.h"

struct aiol_dev {
	int fd;
	struct aiol_dev_info info;
	char *path;
};

struct aiol_queue {
	struct aiol_dev *dev;
	struct aiol_loop *loop;
	unsigned int inflight;
};

struct stub_priv {
	struct aiol_work work;
	struct aiol_queue *q;
	int res;
};

_Static_assert(sizeof(struct stub_priv) <= sizeof(((struct aiol_req *)0)->_priv), "priv");

int aiol_dev_open(const char *path, const struct aiol_open_opts *o, struct aiol_dev **out)
{
	struct aiol_dev *d;
	struct stat sb;
	uint64_t size;
	int flags = o->read_only ? O_RDONLY : O_RDWR;
	int ret;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->fd = -1;
	if (o->direct != AIOL_DIRECT_OFF) {
		d->fd = open(path, flags | O_DIRECT | O_CLOEXEC);
		if (d->fd < 0 && o->direct == AIOL_DIRECT_ON) {
			ret = -errno;
			aiol_err("%s: cannot open with O_DIRECT: %m", path);
			goto err;
		}
		d->info.direct = d->fd >= 0;
	}
	if (d->fd < 0)
		d->fd = open(path, flags | O_CLOEXEC);
	if (d->fd < 0) {
		ret = -errno;
		aiol_err("%s: %m", path);
		goto err;
	}
	if (fstat(d->fd, &sb) < 0) {
		ret = -errno;
		goto err;
	}
	d->info.is_blockdev = S_ISBLK(sb.st_mode);
	if (d->info.is_blockdev) {
		if (ioctl(d->fd, BLKGETSIZE64, &size) < 0) {
			ret = -errno;
			goto err;
		}
		d->info.caps = AIOL_CAP_FLUSH | AIOL_CAP_FUA;
	} else if (S_ISREG(sb.st_mode)) {
		size = (uint64_t)sb.st_size;
		d->info.caps = AIOL_CAP_FLUSH | AIOL_CAP_FUA | AIOL_CAP_DISCARD | AIOL_CAP_WRITE_ZEROES;
	} else {
		aiol_err("%s: not a regular file or block device", path);
		ret = -EINVAL;
		goto err;
	}
	if (o->offset > size) {
		aiol_err("%s: offset %llu is past the end (%llu bytes)", path,
			 (unsigned long long)o->offset, (unsigned long long)size);
		ret = -EINVAL;
		goto err;
	}
	d->path = strdup(path);
	d->info.path = d->path;
	d->info.backing_size = size;
	d->info.offset = o->offset;
	d->info.size = size - o->offset;
	if (o->sizelimit && o->sizelimit < d->info.size)
		d->info.size = o->sizelimit;
	d->info.block_size = o->block_size ? o->block_size : 512;
	d->info.size &= ~((uint64_t)d->info.block_size - 1);
	d->info.dio_align = d->info.direct ? 512 : 1;
	d->info.dio_mem_align = d->info.direct ? 512 : 1;
	d->info.read_only = o->read_only;
	d->info.engine = AIOL_ENGINE_SYNC;
	*out = d;
	return 0;
err:
	if (d->fd >= 0)
		close(d->fd);
	free(d);
	return ret;
}

void aiol_dev_close(struct aiol_dev *d)
{
	if (!d)
		return;
	close(d->fd);
	free(d->path);
	free(d);
}

const struct aiol_dev_info *aiol_dev_info(const struct aiol_dev *d)
{
	return &d->info;
}

int aiol_dev_sync(struct aiol_dev *d)
{
	return fdatasync(d->fd) < 0 ? -errno : 0;
}

const char *aiol_engine_name(enum aiol_engine e)
{
	static const char *const names[] = { "uring", "aio", "threads", "sync" };

	return (unsigned int)e < 4 ? names[e] : "?";
}

int aiol_engine_parse(const char *s, enum aiol_engine *out)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, aiol_engine_name((enum aiol_engine)i))) {
			*out = (enum aiol_engine)i;
			return 0;
		}
	return -EINVAL;
}

int aiol_queue_create(struct aiol_dev *dev, struct aiol_loop *loop,
		      const struct aiol_queue_opts *opts, struct aiol_queue **out)
{
	struct aiol_queue *q = calloc(1, sizeof(*q));

	(void)opts;
	if (!q)
		return -ENOMEM;
	q->dev = dev;
	q->loop = loop;
	*out = q;
	return 0;
}

void aiol_queue_destroy(struct aiol_queue *q)
{
	free(q);
}

struct aiol_dev *aiol_queue_dev(struct aiol_queue *q)
{
	return q->dev;
}

struct aiol_loop *aiol_queue_loop(struct aiol_queue *q)
{
	return q->loop;
}

unsigned int aiol_queue_inflight(const struct aiol_queue *q)
{
	return q->inflight;
}

static void stub_complete(struct aiol_work *w)
{
	struct stub_priv *p = (struct stub_priv *)w;
	struct aiol_req *req = (struct aiol_req *)((char *)p - offsetof(struct aiol_req, _priv));

	p->q->inflight--;
	req->done(req, p->res);
}

static int stub_rw(struct aiol_dev *d, struct aiol_req *r)
{
	uint64_t done = 0;
	uint64_t pos = r->off + d->info.offset;

	while (done < r->len) {
		ssize_t n;

		if (r->op == AIOL_OP_READ)
			n = pread(d->fd, (char *)r->buf + done, r->len - done, (off_t)(pos + done));
		else
			n = pwritev2(d->fd, &(struct iovec){ (char *)r->buf + done, r->len - done }, 1,
				     (off_t)(pos + done), (r->flags & AIOL_F_FUA) ? RWF_DSYNC : 0);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n == 0) {
			if (r->op == AIOL_OP_READ) {	/* past the backing's end: zeroes */
				memset((char *)r->buf + done, 0, r->len - done);
				return 0;
			}
			return -EIO;
		}
		done += (uint64_t)n;
	}
	return 0;
}

static int stub_do(struct aiol_dev *d, struct aiol_req *r)
{
	const struct aiol_dev_info *i = &d->info;
	int mode;

	if (r->op == AIOL_OP_FLUSH)
		return fdatasync(d->fd) < 0 ? -errno : 0;
	if (r->off > i->size || r->len > i->size - r->off)
		return r->op == AIOL_OP_READ ? -EINVAL : -ENOSPC;
	if (i->read_only && r->op != AIOL_OP_READ)
		return -EPERM;
	switch (r->op) {
	case AIOL_OP_READ:
	case AIOL_OP_WRITE:
		return stub_rw(d, r);
	case AIOL_OP_DISCARD:
	case AIOL_OP_WRITE_ZEROES:
		if (i->is_blockdev)
			return -EOPNOTSUPP;
		mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;
		if (r->op == AIOL_OP_WRITE_ZEROES && (r->flags & AIOL_F_NO_UNMAP))
			mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_ZERO_RANGE;
		if (fallocate(d->fd, mode, (off_t)(r->off + i->offset), (off_t)r->len) < 0)
			return -errno;
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

int aiol_submit(struct aiol_queue *q, struct aiol_req *req)
{
	struct stub_priv *p = (struct stub_priv *)&req->_priv;

	if (!req->done)
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	p->q = q;
	p->work.fn = stub_complete;
	p->res = stub_do(q->dev, req);
	q->inflight++;
	aiol_loop_defer(q->loop, &p->work);
	return 0;
}
