// SPDX-License-Identifier: MIT
/*
 * faultfs: a FUSE file system for testing how the engine copes with a
 * backing file that fails.  It shows one file, "disk", that passes every
 * read, write, fsync, fallocate and lseek through to a real backing file,
 * except where a rule says otherwise:
 *
 *   eio read|write START LEN   requests touching [START, START+LEN) fail EIO
 *   short read|write AT        a request crossing AT is cut to end at AT
 *   half read|write            every request longer than a byte does half
 *   eof read AT                a read starting at AT returns 0 bytes
 *   eagain read|write N        the next N requests fail with EAGAIN
 *   nodirect                   open with O_DIRECT fails with EINVAL
 *   nofallocate                fallocate fails with EOPNOTSUPP
 *   clear                      drop every rule
 *
 * Rules are given as --rule 'TEXT' options at mount time and can be changed
 * while mounted by writing lines to the file "ctl" beside "disk".  Reading
 * "ctl" returns how often each kind of fault has fired so far, as
 * "name=count" pairs, so a test can tell that its fault really happened.
 *
 * Files are opened with direct_io: the kernel's page cache stays out of the
 * way, so a short transfer reaches the caller as a short read(2)/write(2)
 * instead of being taken for the end of the file.
 *
 * How the kernel hands short transfers of asynchronous callers (io_uring,
 * Linux AIO) on to them depends on FUSE's async direct I/O (Linux 6.18):
 *   - with it (the default here), a short read arrives as a short count,
 *     but a short write arrives as EIO (fuse_get_res_by_io());
 *   - without it (--sync-dio), a short write arrives as a short count, but
 *     io_uring retries a short read inside the kernel from the original
 *     offset and returns the full length with the wrong data in the tail.
 * So short reads are tested on a default mount and short writes on a
 * --sync-dio one.
 *
 * Usage: faultfs [--sync-dio] [--rule TEXT]... BACKING MOUNTPOINT [FUSE-OPTION...]
 * It runs in the foreground; unmount with fusermount3 -u (it also asks
 * for auto_unmount, so the mount goes when the process dies).
 *
 * Thread model: libfuse's worker threads call the handlers concurrently;
 * the rules and counters are under one mutex, I/O on the backing fd is
 * done outside it with pread/pwrite.
 */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_RULES 64

enum dir { RD = 0, WR = 1 };

enum kind { K_EIO, K_SHORT, K_HALF, K_EOF, K_EAGAIN };

struct rule {
	enum kind kind;
	enum dir dir;
	uint64_t start, len; /* K_EIO: range; K_SHORT, K_EOF: start;
			      * K_EAGAIN: failures left (start) */
};

enum counter {
	C_EIO_READ,
	C_EIO_WRITE,
	C_SHORT_READ,
	C_SHORT_WRITE,
	C_EOF_READ,
	C_EAGAIN_READ,
	C_EAGAIN_WRITE,
	C_NODIRECT,
	C_NOFALLOCATE,
	C_READS,
	C_WRITES,
	C_MAX
};

static const char *const counter_names[C_MAX] = {
    "eio_read",	    "eio_write", "short_read",	"short_write", "eof_read", "eagain_read",
    "eagain_write", "nodirect",	 "nofallocate", "reads",       "writes",
};

static struct {
	pthread_mutex_t lock;
	int fd; /* the backing file */
	struct rule rules[MAX_RULES];
	unsigned int nrules;
	bool nodirect, nofallocate;
	uint64_t count[C_MAX];
	char ctl_in[4096]; /* a partial line written to ctl */
	size_t ctl_in_len;
} fs = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

/* ---- rules ---- */

static int parse_dir(const char *s, enum dir *d)
{
	if (!strcmp(s, "read"))
		*d = RD;
	else if (!strcmp(s, "write"))
		*d = WR;
	else
		return -EINVAL;
	return 0;
}

/* Apply one rule line (under fs.lock).  Returns 0 or -EINVAL. */
static int rule_apply(const char *line)
{
	char word[16], dirw[16];
	unsigned long long a = 0, b = 0;
	struct rule r = {0};
	int n;

	n = sscanf(line, "%15s %15s %llu %llu", word, dirw, &a, &b);
	if (n < 1)
		return 0; /* blank line */
	if (!strcmp(word, "clear")) {
		fs.nrules = 0;
		fs.nodirect = false;
		fs.nofallocate = false;
		return 0;
	}
	if (!strcmp(word, "nodirect")) {
		fs.nodirect = true;
		return 0;
	}
	if (!strcmp(word, "nofallocate")) {
		fs.nofallocate = true;
		return 0;
	}
	if (n < 2 || parse_dir(dirw, &r.dir) < 0)
		return -EINVAL;
	if (!strcmp(word, "eio") && n == 4) {
		r.kind = K_EIO;
		r.start = a;
		r.len = b;
	} else if (!strcmp(word, "short") && n == 3) {
		r.kind = K_SHORT;
		r.start = a;
	} else if (!strcmp(word, "half") && n == 2) {
		r.kind = K_HALF;
	} else if (!strcmp(word, "eof") && n == 3 && r.dir == RD) {
		r.kind = K_EOF;
		r.start = a;
	} else if (!strcmp(word, "eagain") && n == 3) {
		r.kind = K_EAGAIN;
		r.start = a;
	} else {
		return -EINVAL;
	}
	if (fs.nrules == MAX_RULES)
		return -ENOSPC;
	fs.rules[fs.nrules++] = r;
	return 0;
}

/*
 * Decide what happens to a transfer of *size bytes at off in direction d:
 * returns -EIO to fail it, else 0 with *size possibly reduced (to 0 for a
 * premature end of file).  Counts what fired.
 */
static int rule_check(enum dir d, uint64_t off, size_t *size)
{
	size_t sz = *size;
	int ret = 0;

	pthread_mutex_lock(&fs.lock);
	fs.count[d == RD ? C_READS : C_WRITES]++;
	for (unsigned int i = 0; i < fs.nrules; i++) {
		struct rule *r = &fs.rules[i];

		if (r->dir != d)
			continue;
		switch (r->kind) {
		case K_EIO:
			if (off < r->start + r->len && r->start < off + sz) {
				fs.count[d == RD ? C_EIO_READ : C_EIO_WRITE]++;
				ret = -EIO;
				goto out;
			}
			break;
		case K_SHORT:
			if (off < r->start && r->start < off + sz) {
				sz = (size_t)(r->start - off);
				fs.count[d == RD ? C_SHORT_READ : C_SHORT_WRITE]++;
			}
			break;
		case K_HALF:
			if (sz > 1) {
				sz /= 2;
				fs.count[d == RD ? C_SHORT_READ : C_SHORT_WRITE]++;
			}
			break;
		case K_EOF:
			if (off == r->start && sz) {
				sz = 0;
				fs.count[C_EOF_READ]++;
			}
			break;
		case K_EAGAIN:
			if (r->start) {
				r->start--;
				fs.count[d == RD ? C_EAGAIN_READ : C_EAGAIN_WRITE]++;
				ret = -EAGAIN;
				goto out;
			}
			break;
		}
	}
out:
	pthread_mutex_unlock(&fs.lock);
	*size = sz;
	return ret;
}

/* ---- file system ---- */

enum node { N_ROOT, N_DISK, N_CTL, N_NONE };

static enum node lookup(const char *path)
{
	if (!strcmp(path, "/"))
		return N_ROOT;
	if (!strcmp(path, "/disk"))
		return N_DISK;
	if (!strcmp(path, "/ctl"))
		return N_CTL;
	return N_NONE;
}

static bool sync_dio;

static void *ffs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	if (sync_dio)
		conn->want &= ~(unsigned int)FUSE_CAP_ASYNC_DIO;
	cfg->direct_io = 1;
	cfg->attr_timeout = 0;
	cfg->entry_timeout = 0;
	cfg->use_ino = 0;
	return NULL;
}

static int ffs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof(*st));
	switch (lookup(path)) {
	case N_ROOT:
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	case N_DISK:
		if (fstat(fs.fd, st) < 0)
			return -errno;
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = 1;
		return 0;
	case N_CTL:
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		return 0;
	default:
		return -ENOENT;
	}
}

static int ffs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off;
	(void)fi;
	(void)flags;
	if (lookup(path) != N_ROOT)
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, "disk", NULL, 0, 0);
	fill(buf, "ctl", NULL, 0, 0);
	return 0;
}

/* Whether the switch *flag is on; counted under counter when it is. */
static bool refused(const bool *flag, enum counter counter)
{
	bool on;

	pthread_mutex_lock(&fs.lock);
	on = *flag;
	if (on)
		fs.count[counter]++;
	pthread_mutex_unlock(&fs.lock);
	return on;
}

static int ffs_open(const char *path, struct fuse_file_info *fi)
{
	enum node n = lookup(path);

	if (n != N_DISK && n != N_CTL)
		return n == N_ROOT ? -EISDIR : -ENOENT;
	fi->direct_io = 1;
	if (n == N_DISK && (fi->flags & O_DIRECT) && refused(&fs.nodirect, C_NODIRECT))
		return -EINVAL;
	return 0;
}

static int ffs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	(void)fi;
	switch (lookup(path)) {
	case N_CTL:
		return 0; /* "> ctl" */
	case N_DISK:
		return ftruncate(fs.fd, size) < 0 ? -errno : 0;
	default:
		return -EINVAL;
	}
}

static int ctl_read(char *buf, size_t size, off_t off)
{
	char text[1024];
	size_t len = 0;

	pthread_mutex_lock(&fs.lock);
	for (int i = 0; i < C_MAX; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s=%" PRIu64 "\n",
					counter_names[i], fs.count[i]);
	pthread_mutex_unlock(&fs.lock);
	if ((uint64_t)off >= len)
		return 0;
	if (size > len - (size_t)off)
		size = len - (size_t)off;
	memcpy(buf, text + off, size);
	return (int)size;
}

/* Lines written to ctl; a bad line fails the write with EINVAL. */
static int ctl_write(const char *buf, size_t size)
{
	int ret = 0;

	pthread_mutex_lock(&fs.lock);
	for (size_t i = 0; i < size; i++) {
		char c = buf[i];

		if (c != '\n') {
			if (fs.ctl_in_len + 1 >= sizeof(fs.ctl_in)) {
				ret = -E2BIG;
				fs.ctl_in_len = 0;
				break;
			}
			fs.ctl_in[fs.ctl_in_len++] = c;
			continue;
		}
		fs.ctl_in[fs.ctl_in_len] = '\0';
		fs.ctl_in_len = 0;
		ret = rule_apply(fs.ctl_in);
		if (ret < 0) {
			fprintf(stderr, "faultfs: bad rule '%s'\n", fs.ctl_in);
			break;
		}
	}
	pthread_mutex_unlock(&fs.lock);
	return ret < 0 ? ret : (int)size;
}

static int ffs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t r;
	int ret;

	(void)fi;
	if (lookup(path) == N_CTL)
		return ctl_read(buf, size, off);
	ret = rule_check(RD, (uint64_t)off, &size);
	if (ret < 0)
		return ret;
	if (size == 0)
		return 0;
	r = pread(fs.fd, buf, size, off);
	return r < 0 ? -errno : (int)r;
}

static int ffs_write(const char *path, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	ssize_t r;
	int ret;

	(void)fi;
	if (lookup(path) == N_CTL)
		return ctl_write(buf, size);
	ret = rule_check(WR, (uint64_t)off, &size);
	if (ret < 0)
		return ret;
	r = pwrite(fs.fd, buf, size, off);
	return r < 0 ? -errno : (int)r;
}

static int ffs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)fi;
	if (lookup(path) != N_DISK)
		return 0;
	if ((datasync ? fdatasync(fs.fd) : fsync(fs.fd)) < 0)
		return -errno;
	return 0;
}

static int ffs_fallocate(const char *path, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	(void)fi;
	if (lookup(path) != N_DISK || refused(&fs.nofallocate, C_NOFALLOCATE))
		return -EOPNOTSUPP;
	return fallocate(fs.fd, mode, off, len) < 0 ? -errno : 0;
}

static off_t ffs_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
	off_t r;

	(void)fi;
	if (lookup(path) != N_DISK)
		return -EINVAL;
	r = lseek(fs.fd, off, whence);
	return r < 0 ? -errno : r;
}

static const struct fuse_operations ffs_ops = {
    .init = ffs_init,
    .getattr = ffs_getattr,
    .readdir = ffs_readdir,
    .open = ffs_open,
    .truncate = ffs_truncate,
    .read = ffs_read,
    .write = ffs_write,
    .fsync = ffs_fsync,
    .fallocate = ffs_fallocate,
    .lseek = ffs_lseek,
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: faultfs [--sync-dio] [--rule TEXT]... BACKING MOUNTPOINT [FUSE-OPTION...]\n"
		"Rules: eio read|write START LEN, short read|write AT, half read|write,\n"
		"       eof read AT, eagain read|write N, nodirect, nofallocate, clear.\n"
		"Change them later by writing lines to MOUNTPOINT/ctl.\n");
}

int main(int argc, char **argv)
{
	char **fargv;
	int i = 1, fargc = 0, ret;

	while (i < argc && !strncmp(argv[i], "--", 2)) {
		if (!strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--sync-dio")) {
			sync_dio = true;
			i++;
			continue;
		}
		if (strcmp(argv[i], "--rule") || i + 1 >= argc) {
			usage(stderr);
			return 2;
		}
		if (rule_apply(argv[i + 1]) < 0) {
			fprintf(stderr, "faultfs: bad rule '%s'\n", argv[i + 1]);
			return 2;
		}
		i += 2;
	}
	if (argc - i < 2) {
		usage(stderr);
		return 2;
	}
	fs.fd = open(argv[i], O_RDWR | O_CLOEXEC);
	if (fs.fd < 0) {
		fprintf(stderr, "faultfs: %s: %s\n", argv[i], strerror(errno));
		return 1;
	}
	fargv = calloc((size_t)argc + 8, sizeof(*fargv));
	if (!fargv)
		return 1;
	fargv[fargc++] = argv[0];
	fargv[fargc++] = argv[i + 1];
	fargv[fargc++] = "-f";
	fargv[fargc++] = "-o";
	fargv[fargc++] = "auto_unmount,fsname=faultfs,subtype=faultfs";
	for (int k = i + 2; k < argc; k++)
		fargv[fargc++] = argv[k];
	ret = fuse_main(fargc, fargv, &ffs_ops, NULL);
	free(fargv);
	close(fs.fd);
	return ret;
}
