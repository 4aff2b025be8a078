// SPDX-License-Identifier: MIT
/*
 * The file store's open (aioloop/store.h): opening a backing file or block
 * device and probing what it can do: its
 * size (BLKGETSIZE64 for block devices), logical block size (BLKSSZGET),
 * the alignment direct I/O needs (statx STATX_DIOALIGN, else the logical
 * block size of the device under the file system, else 512), whether
 * O_DIRECT works at all, whether it can be written, and which fallocate
 * modes it has.  The window the device shows (offset, size limit) is
 * checked here, overflow-safe, once.
 *
 * Everything here is control path: blocking calls, run by the thread that
 * calls aiol_file_store_open().  The resulting store is immutable except
 * for its capability bits, which the engine clears atomically when the
 * backing answers EOPNOTSUPP.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/stat.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "align.h"
#include "file.h"

/* Largest direct I/O alignment the engine takes (its read-modify-write
 * steps are at most 1 MiB). */
#define DIO_ALIGN_MAX		65536u

static const char *const engine_names[] = {
	[AIOL_ENGINE_URING] = "uring",
	[AIOL_ENGINE_AIO] = "aio",
	[AIOL_ENGINE_THREADS] = "threads",
	[AIOL_ENGINE_SYNC] = "sync",
	[AIOL_ENGINE_RBD] = "rbd",
};

const char *aiol_engine_name(enum aiol_engine e)
{
	if ((unsigned int)e >= sizeof(engine_names) / sizeof(engine_names[0]))
		return "unknown";
	return engine_names[e];
}

int aiol_engine_parse(const char *s, enum aiol_engine *out)
{
	/* rbd is not an engine of files: an image is chosen by its name. */
	for (unsigned int i = 0; i < AIOL_ENGINE_RBD; i++) {
		if (s && !strcmp(s, engine_names[i])) {
			*out = (enum aiol_engine)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Read one unsigned number from a sysfs file; 0 if absent or unreadable. */
static uint64_t sysfs_u64(const char *path)
{
	char buf[32];
	uint64_t v = 0;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f))
		v = strtoull(buf, NULL, 10);
	fclose(f);
	return v;
}

/* A queue attribute of block device maj:min; for a partition the queue is
 * the parent's, one directory up. */
static uint64_t queue_attr(dev_t d, const char *attr)
{
	char path[160];
	uint64_t v;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/%s", major(d), minor(d), attr);
	v = sysfs_u64(path);
	if (v)
		return v;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../queue/%s", major(d), minor(d), attr);
	return sysfs_u64(path);
}

/* statx STATX_DIOALIGN; 0 when the kernel or file system does not say. */
static void probe_statx_dio(int fd, unsigned int *off_align, unsigned int *mem_align)
{
	struct statx sx;

	*off_align = 0;
	*mem_align = 0;
	memset(&sx, 0, sizeof(sx));
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) < 0)
		return;
	if (!(sx.stx_mask & STATX_DIOALIGN))
		return;
	*off_align = sx.stx_dio_offset_align;
	*mem_align = sx.stx_dio_mem_align;
}

/* Direct I/O alignment of an O_DIRECT fd: statx, else the logical block
 * size of the device below, else 512. */
static void probe_dio_align(int fd, const struct stat *st, unsigned int *off_align,
			    unsigned int *mem_align)
{
	unsigned int off, mem;
	int lbs;

	probe_statx_dio(fd, &off, &mem);
	if (off && mem) {
		*off_align = off;
		*mem_align = mem;
		return;
	}
	if (S_ISBLK(st->st_mode) && ioctl(fd, BLKSSZGET, &lbs) == 0 && lbs > 0) {
		off = (unsigned int)lbs;
	} else {
		uint64_t v = queue_attr(st->st_dev, "logical_block_size");

		off = v && v <= DIO_ALIGN_MAX ? (unsigned int)v : 512;
	}
	*off_align = off;
	*mem_align = off;
}

/* Probe the fallocate modes of a writable regular file on a range past its
 * end with KEEP_SIZE, which changes no data.  A zeroed range is punched
 * again so that no blocks stay allocated past the end.  Returns
 * AIOL_STORE_DISCARD and AIOL_STORE_ZERO bits. */
static uint32_t probe_fallocate(int fd, uint64_t file_size)
{
	uint64_t at = align_up(file_size, 65536) + 65536;
	uint32_t fl = 0;

	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)at, 4096) == 0)
		fl |= AIOL_STORE_DISCARD;
	if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)at, 4096) == 0) {
		fl |= AIOL_STORE_ZERO;
		if (fl & AIOL_STORE_DISCARD)
			(void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)at, 4096);
	}
	return fl;
}

/* Is O_DIRECT real on this file system?  tmpfs accepts O_DIRECT since Linux
 * 6.6 but does page-cache I/O anyway. */
static const char *no_direct_reason(int fd)
{
	struct statfs sfs;

	if (fstatfs(fd, &sfs) == 0 &&
	    (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC))
		return "tmpfs has no direct I/O (its O_DIRECT is page-cache I/O)";
	return NULL;
}

/*
 * Decide whether direct I/O can be used.  Sets *reason to why not (static
 * string or buf) and returns false, or returns true.
 */
static bool direct_usable(const char *path, int flags, const struct stat *st, int fd,
			  const struct aiol_open_opts *o, uint64_t *size,
			  unsigned int *off_align, unsigned int *mem_align,
			  char *buf, size_t buflen, const char **reason)
{
	const char *r;
	uint64_t end;
	int dfd;

	r = S_ISREG(st->st_mode) ? no_direct_reason(fd) : NULL;
	if (r) {
		*reason = r;
		return false;
	}
	dfd = open(path, flags | O_DIRECT);
	if (dfd < 0) {
		snprintf(buf, buflen, "O_DIRECT open failed: %s", strerror(errno));
		*reason = buf;
		return false;
	}
	probe_dio_align(dfd, st, off_align, mem_align);
	close(dfd);
	/* Bounce buffers come from the loop's arena, aligned to 4096. */
	if (!is_pow2(*off_align) || *off_align > DIO_ALIGN_MAX || !is_pow2(*mem_align) ||
	    *mem_align > 4096) {
		snprintf(buf, buflen, "unusable direct I/O alignment %u/%u", *off_align, *mem_align);
		*reason = buf;
		return false;
	}
	if (o->offset % *off_align) {
		snprintf(buf, buflen, "offset %llu is not a multiple of the direct I/O alignment %u",
			 (unsigned long long)o->offset, *off_align);
		*reason = buf;
		return false;
	}
	/* The window must end on a block boundary: a read-modify-write of a
	 * last partial block would rewrite, with what it read, bytes past the
	 * window that someone else may be writing (or grow the file).  Like
	 * the loop driver, which shows whole sectors, round the visible size
	 * down. */
	end = align_down(o->offset + *size, *off_align);
	if (end <= o->offset) {
		snprintf(buf, buflen, "the window (%llu bytes) is smaller than one direct I/O block of %u",
			 (unsigned long long)*size, *off_align);
		*reason = buf;
		return false;
	}
	*size = end - o->offset;
	return true;
}

int aiol_file_store_open(const char *path, const struct aiol_open_opts *opts,
			 struct aiol_store **out)
{
	static const struct aiol_open_opts defaults;
	const struct aiol_open_opts *o = opts ? opts : &defaults;
	struct file_store *fs = NULL;
	struct aiol_dev_info *info;
	uint32_t fl = 0;
	struct stat st;
	bool read_only = o->read_only, direct = false;
	unsigned int off_align = 1, mem_align = 1;
	uint64_t backing = 0, size, end;
	const char *reason = NULL;
	char reason_buf[160];
	int flags, fd = -1, ret, lbs = 512;

	*out = NULL;
	if (!path || !*path) {
		aiol_err("no backing file given");
		return -EINVAL;
	}
	if (o->block_size != 0 && o->block_size != 512 && o->block_size != 4096) {
		aiol_err("%s: block size %u is not 512 or 4096", path, o->block_size);
		return -EINVAL;
	}
	if ((unsigned int)o->direct > AIOL_DIRECT_OFF || (unsigned int)o->engine > AIOL_ENGINE_SYNC) {
		aiol_err("%s: invalid open options", path);
		return -EINVAL;
	}
	if (stat(path, &st) < 0) {
		ret = -errno;
		aiol_err("%s: %m", path);
		return ret;
	}
	if (S_ISDIR(st.st_mode)) {
		aiol_err("%s: is a directory, not a regular file or block device", path);
		return -EISDIR;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		aiol_err("%s: not a regular file or block device", path);
		return -EINVAL;
	}

	flags = O_CLOEXEC | (read_only ? O_RDONLY : O_RDWR);
	fd = open(path, flags);
	if (fd < 0 && !read_only && (errno == EACCES || errno == EROFS || errno == EPERM)) {
		aiol_warn("%s: cannot be opened for writing (%m): using it read-only", path);
		read_only = true;
		flags = O_CLOEXEC | O_RDONLY;
		fd = open(path, flags);
	}
	if (fd < 0) {
		ret = -errno;
		aiol_err("%s: %m", path);
		return ret;
	}
	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
		aiol_err("%s: changed while being opened", path);
		ret = -EINVAL;
		goto err_close;
	}

	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &backing) < 0) {
			ret = -errno;
			aiol_err("%s: BLKGETSIZE64: %m", path);
			goto err_close;
		}
		if (ioctl(fd, BLKSSZGET, &lbs) < 0 || lbs <= 0)
			lbs = 512;
	} else {
		backing = (uint64_t)st.st_size;
	}

	/* The visible window, like lo_offset/lo_sizelimit. */
	if (o->offset >= backing) {
		aiol_err("%s: offset %llu is past the end of the backing (%llu bytes)", path,
			 (unsigned long long)o->offset, (unsigned long long)backing);
		ret = -EINVAL;
		goto err_close;
	}
	size = backing - o->offset;
	if (o->sizelimit && o->sizelimit < size)
		size = o->sizelimit;
	if (__builtin_add_overflow(o->offset, size, &end) || end > backing || size == 0) {
		aiol_err("%s: offset %llu and size limit %llu leave no bytes visible", path,
			 (unsigned long long)o->offset, (unsigned long long)o->sizelimit);
		ret = -EINVAL;
		goto err_close;
	}

	if (o->direct != AIOL_DIRECT_OFF) {
		uint64_t dsize = size;

		direct = direct_usable(path, flags, &st, fd, o, &dsize, &off_align,
				       &mem_align, reason_buf, sizeof(reason_buf), &reason);
		if (!direct && o->direct == AIOL_DIRECT_ON) {
			aiol_err("%s: direct I/O asked for but not possible: %s", path, reason);
			ret = -EINVAL;
			goto err_close;
		}
		if (!direct) {
			aiol_warn("%s: direct I/O not possible (%s): using buffered I/O", path, reason);
			off_align = 1;
			mem_align = 1;
		} else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_DIRECT) < 0) {
			ret = -errno;
			aiol_err("%s: setting O_DIRECT: %m", path);
			goto err_close;
		} else if (dsize != size) {
			aiol_warn("%s: visible size rounded down from %llu to %llu bytes, a multiple of the direct I/O alignment %u",
				  path, (unsigned long long)size, (unsigned long long)dsize, off_align);
			size = dsize;
		}
	}

	fs = calloc(1, sizeof(*fs));
	if (!fs) {
		ret = -ENOMEM;
		goto err_close;
	}
	fs->path = strdup(path);
	if (!fs->path) {
		ret = -ENOMEM;
		goto err_free;
	}
	fs->base.ops = &file_store_ops;
	fs->bdev_lbs = S_ISBLK(st.st_mode) ? (unsigned int)lbs : 1;
	if (!is_pow2(fs->bdev_lbs))
		fs->bdev_lbs = 512;
	/* fallocate on a block device wants whole logical blocks. */
	fs->base.discard_align = fs->bdev_lbs;
	/* sync: one request at a time, in order. */
	fs->base.max_depth = o->engine == AIOL_ENGINE_SYNC ? 1 : 0;
	fs->fd = fd;
	fs->threads = o->threads ? o->threads : 4;
	fs->sizelimit = o->sizelimit;
	info = &fs->base.info;
	info->path = fs->path;
	info->size = size;
	info->offset = o->offset;
	info->backing_size = backing;
	info->dio_align = off_align;
	info->dio_mem_align = mem_align;
	info->direct = direct;
	info->read_only = read_only;
	info->is_blockdev = S_ISBLK(st.st_mode);
	info->engine = o->engine;
	if (o->block_size)
		info->block_size = o->block_size;
	else
		info->block_size = direct && off_align > 512 ? off_align : 512;
	if (info->block_size > 4096)
		info->block_size = 4096;
	if (info->engine == AIOL_ENGINE_AIO && !direct) {
		aiol_warn("%s: Linux AIO needs direct I/O: using the threads engine", path);
		info->engine = AIOL_ENGINE_THREADS;
	}

	fs->base.caps = AIOL_STORE_EXTENTS;
	if (S_ISBLK(st.st_mode)) {
		if (queue_attr(st.st_rdev, "rotational"))
			fs->base.caps |= AIOL_STORE_ROTATIONAL;
		if (queue_attr(st.st_rdev, "write_zeroes_max_bytes"))
			fs->base.caps |= AIOL_STORE_FAST_ZERO;
		/* fallocate on a block device: PUNCH_HOLE discards (or zeroes),
		 * ZERO_RANGE zeroes out, writing zeroes if it must. */
		fl = AIOL_STORE_ZERO;
		if (queue_attr(st.st_rdev, "discard_max_bytes"))
			fl |= AIOL_STORE_DISCARD;
	} else {
		fs->base.caps |= AIOL_STORE_FAST_ZERO;
		if (queue_attr(st.st_dev, "rotational"))
			fs->base.caps |= AIOL_STORE_ROTATIONAL;
		if (!read_only)
			fl = probe_fallocate(fd, backing);
	}
	if (!read_only)
		fs->base.caps |= fl | AIOL_STORE_FLUSH | AIOL_STORE_FUA;
	if (!direct)
		fs->base.caps |= AIOL_STORE_CACHE;
	/* Only the ring backend reads and writes a registered buffer. */
	if (info->engine == AIOL_ENGINE_URING)
		fs->base.caps |= AIOL_STORE_FIXED_BUF;

	aiol_debug("%s: %llu bytes at offset %llu of %llu, block size %u, %s I/O (align %u/%u), "
		   "%s, engine %s, store caps 0x%x",
		   path, (unsigned long long)size, (unsigned long long)o->offset,
		   (unsigned long long)backing, info->block_size, direct ? "direct" : "buffered",
		   off_align, mem_align, read_only ? "read-only" : "read-write",
		   aiol_engine_name(info->engine), fs->base.caps);
	*out = &fs->base;
	return 0;

err_free:
	free(fs);
err_close:
	close(fd);
	return ret;
}
