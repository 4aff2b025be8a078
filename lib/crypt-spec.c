// SPDX-License-Identifier: MIT
/*
 * The pure and the control-path parts of encryption (aioloop/crypt.h):
 * cipher names, geometry checks, and keys (read from a file or standard
 * input into one locked page that is left out of core dumps and wiped
 * when freed).  No data-path code here; nothing here logs key bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aioloop/crypt.h"
#include "aioloop/log.h"

/* The largest key of any spec (aes-xts with a 512-bit key). */
#define KEY_MAX 64

struct aiol_crypt_key {
	size_t len;
	size_t map_len;
	uint8_t bytes[];
};

int aiol_crypt_spec_parse(const char *s, struct aiol_crypt_spec *out)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "aes-xts-plain64")) {
		out->mode = AIOL_CRYPT_XTS_PLAIN64;
		out->name = "aes-xts-plain64";
		return 0;
	}
	if (!strcmp(s, "aes-cbc-essiv:sha256")) {
		out->mode = AIOL_CRYPT_CBC_ESSIV;
		out->name = "aes-cbc-essiv:sha256";
		return 0;
	}
	return -EINVAL;
}

bool aiol_crypt_key_len_ok(const struct aiol_crypt_spec *spec, size_t len)
{
	switch (spec->mode) {
	case AIOL_CRYPT_XTS_PLAIN64:
		return len == 32 || len == 64;
	case AIOL_CRYPT_CBC_ESSIV:
		return len == 16 || len == 24 || len == 32;
	}
	return false;
}

const char *aiol_crypt_key_lens(const struct aiol_crypt_spec *spec)
{
	switch (spec->mode) {
	case AIOL_CRYPT_XTS_PLAIN64:
		return "32 or 64 bytes (256 or 512 bits)";
	case AIOL_CRYPT_CBC_ESSIV:
		return "16, 24 or 32 bytes (128, 192 or 256 bits)";
	}
	return "?";
}

int aiol_crypt_geom_check(const struct aiol_crypt_geom *g)
{
	if (g->sector_size != 512 && g->sector_size != 4096)
		return -EINVAL;
	/* dm-crypt: "Invalid iv_offset sector". */
	if (g->iv_offset & ((g->sector_size >> 9) - 1))
		return -EINVAL;
	return 0;
}

/* ---- keys ---- */

/* A zeroed key of len bytes (at most one more than the longest key, as
 * read() needs) in its own locked, undumpable mapping. */
static int key_alloc(size_t len, struct aiol_crypt_key **out)
{
	size_t map_len = (size_t)sysconf(_SC_PAGESIZE);
	struct aiol_crypt_key *k;

	*out = NULL;
	if (len > KEY_MAX + 1)
		return -EINVAL;
	k = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (k == MAP_FAILED) {
		int ret = -errno;

		aiol_err("cannot map memory for a key: %m");
		return ret;
	}
	if (madvise(k, map_len, MADV_DONTDUMP) < 0)
		aiol_warn("key memory cannot be left out of core dumps: %m");
	if (mlock(k, map_len) < 0)
		aiol_warn("key memory cannot be locked (it may be swapped out): %m");
	k->len = len;
	k->map_len = map_len;
	*out = k;
	return 0;
}

void aiol_crypt_key_free(struct aiol_crypt_key *key)
{
	size_t map_len;

	if (!key)
		return;
	map_len = key->map_len;
	explicit_bzero(key, map_len);
	munlock(key, map_len);
	munmap(key, map_len);
}

size_t aiol_crypt_key_len(const struct aiol_crypt_key *key)
{
	return key->len;
}

const uint8_t *aiol_crypt_key_bytes(const struct aiol_crypt_key *key)
{
	return key->bytes;
}

int aiol_crypt_key_new(const void *bytes, size_t len, struct aiol_crypt_key **out)
{
	int ret = key_alloc(len, out);

	if (ret < 0)
		return ret;
	memcpy((*out)->bytes, bytes, len);
	return 0;
}

int aiol_crypt_key_read_fd(int fd, const char *name, const struct aiol_crypt_spec *spec,
			   struct aiol_crypt_key **out)
{
	struct aiol_crypt_key *k;
	struct stat st;
	size_t got = 0;
	int ret;

	*out = NULL;
	/* The cipher library's key schedules are in ordinary memory: no
	 * core dumps (and no ptrace by other processes of the user). */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		aiol_warn("cannot turn core dumps off: %m");
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & (S_IRGRP | S_IROTH)))
		aiol_warn("key file %s is readable by %s (mode %04o): keep it 0600", name,
			  st.st_mode & S_IROTH ? "others" : "its group", st.st_mode & 07777);
	/* One byte more than the longest key, so that a long file shows. */
	ret = key_alloc(KEY_MAX + 1, &k);
	if (ret < 0)
		return ret;
	while (got < KEY_MAX + 1) {
		ssize_t n = read(fd, k->bytes + got, KEY_MAX + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			aiol_err("key file %s: %m", name);
			goto err;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (!aiol_crypt_key_len_ok(spec, got)) {
		if (got > KEY_MAX)
			aiol_err("key file %s is longer than %s takes: %s", name, spec->name,
				 aiol_crypt_key_lens(spec));
		else
			aiol_err("key file %s has %zu bytes; %s takes %s", name, got, spec->name,
				 aiol_crypt_key_lens(spec));
		ret = -EINVAL;
		goto err;
	}
	k->len = got;
	*out = k;
	return 0;
err:
	aiol_crypt_key_free(k);
	return ret;
}

int aiol_crypt_key_read(const char *path, const struct aiol_crypt_spec *spec,
			struct aiol_crypt_key **out)
{
	int fd, ret;

	*out = NULL;
	if (!strcmp(path, "-"))
		return aiol_crypt_key_read_fd(STDIN_FILENO, "(standard input)", spec, out);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		aiol_err("key file %s: %m", path);
		return ret;
	}
	ret = aiol_crypt_key_read_fd(fd, path, spec, out);
	close(fd);
	return ret;
}
