// SPDX-License-Identifier: MIT
/*
 * The file store's synchronous executor: one primitive run with a blocking
 * system call, following the kernel loop driver (flush is fdatasync, FUA a
 * write with RWF_DSYNC, discard PUNCH_HOLE|KEEP_SIZE, zero
 * ZERO_RANGE|KEEP_SIZE), and block status by SEEK_DATA/SEEK_HOLE.  The
 * sync backend runs it on the loop thread; pool threads run it for the
 * other backends.
 *
 * Thread model: any thread; it reads only the immutable store and the io
 * it was handed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/uio.h>
#include <unistd.h>

#include "file.h"

/* Block status of [io->off, io->off + io->len) by SEEK_DATA/SEEK_HOLE. */
static int file_extents(const struct file_store *fs, struct aiol_store_io *io)
{
	uint64_t pos = io->off, end = io->off + io->len;
	uint32_t n = 0;

	if (fs->base.info.is_blockdev) {
		io->ext[0].len = io->len;
		io->ext[0].flags = 0;
		io->ext_count = 1;
		return 0;
	}
	while (pos < end && n < io->ext_max) {
		off_t data, hole;
		uint64_t stop;
		uint32_t flags;

		data = lseek(fs->fd, (off_t)pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO) {
			data = (off_t)end; /* only a hole from here on */
		} else if (data < 0) {
			/* No SEEK_DATA: everything is data. */
			if (errno != EINVAL && errno != EOPNOTSUPP)
				return -errno;
			data = (off_t)pos;
		}
		if ((uint64_t)data > pos) {
			stop = (uint64_t)data < end ? (uint64_t)data : end;
			flags = AIOL_EXT_HOLE | AIOL_EXT_ZERO;
		} else {
			hole = lseek(fs->fd, (off_t)pos, SEEK_HOLE);
			if (hole < 0 && errno != ENXIO && errno != EINVAL && errno != EOPNOTSUPP)
				return -errno;
			if (hole < 0 || (uint64_t)hole <= pos)
				hole = (off_t)end;
			stop = (uint64_t)hole < end ? (uint64_t)hole : end;
			flags = 0;
		}
		if (n && io->ext[n - 1].flags == flags) {
			io->ext[n - 1].len += stop - pos;
		} else {
			io->ext[n].len = stop - pos;
			io->ext[n].flags = flags;
			n++;
		}
		pos = stop;
	}
	io->ext_count = n;
	return 0;
}

int file_exec(const struct file_store *fs, struct aiol_store_io *io)
{
	struct iovec iov = {.iov_base = io->buf, .iov_len = io->len};
	ssize_t r;
	int ret;

	switch (io->op) {
	case AIOL_SIO_READ:
		r = preadv2(fs->fd, &iov, 1, (off_t)io->off, 0);
		return r < 0 ? -errno : (int)r;
	case AIOL_SIO_WRITE:
		r = pwritev2(fs->fd, &iov, 1, (off_t)io->off,
			     (io->flags & AIOL_F_FUA) ? RWF_DSYNC : 0);
		return r < 0 ? -errno : (int)r;
	case AIOL_SIO_FLUSH:
		return fdatasync(fs->fd) < 0 ? -errno : 0;
	case AIOL_SIO_DISCARD:
		return fallocate(fs->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)io->off,
				 (off_t)io->len) < 0
			   ? -errno
			   : 0;
	case AIOL_SIO_ZERO:
		return fallocate(fs->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)io->off,
				 (off_t)io->len) < 0
			   ? -errno
			   : 0;
	case AIOL_SIO_CACHE:
		ret = posix_fadvise(fs->fd, (off_t)io->off, (off_t)io->len, POSIX_FADV_WILLNEED);
		return -ret;
	case AIOL_SIO_EXTENTS:
		return file_extents(fs, io);
	default:
		return -EINVAL;
	}
}
