// SPDX-License-Identifier: MIT
/*
 * Unit tests of encryption (aioloop/crypt.h, lib/cipher.c, lib/crypt.c):
 * cipher names, geometry checks and dm-crypt's IV numbers; keys read from
 * a pipe (as from standard input) and from files, wrong lengths refused,
 * a key file others may read warned about, key bytes never logged;
 * known answers for every cipher, key length and sector geometry, computed
 * at test time by an independent implementation (tests/crypt/plain.py on
 * Python's `cryptography`); and the stage under the engine on a real file
 * with every backend, with and without crypto threads: unaligned writes
 * read back, the file decrypts
 * sector by sector to what was written, write-zeroes writes encrypted
 * zeroes, block status says "data", discard is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "aioloop/crypt.h"
#include "aioloop/log.h"
#include "aioloop/store.h"
#include "cipher.h"
#include "engine-util.h"

#ifndef SRCDIR
#error "SRCDIR is the source tree (set by meson)"
#endif
#define PLAIN_PY SRCDIR "/tests/crypt/plain.py"

static const char *tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	return t && *t ? t : "/var/tmp";
}

/* ---- log capture ---- */

static char logbuf[8192];

static void sink(int level, const char *msg)
{
	size_t n = strlen(logbuf);

	(void)level;
	snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", msg);
}

static int setup_log(void **state)
{
	(void)state;
	logbuf[0] = 0;
	aiol_log_setup("test-crypt", AIOL_LOG_DEBUG, sink);
	return 0;
}

/* ---- names, geometry, IVs ---- */

static void spec_parse(void **state)
{
	struct aiol_crypt_spec s;

	(void)state;
	assert_int_equal(aiol_crypt_spec_parse("aes-xts-plain64", &s), 0);
	assert_int_equal(s.mode, AIOL_CRYPT_XTS_PLAIN64);
	assert_string_equal(s.name, "aes-xts-plain64");
	assert_true(aiol_crypt_key_len_ok(&s, 32));
	assert_true(aiol_crypt_key_len_ok(&s, 64));
	assert_false(aiol_crypt_key_len_ok(&s, 16));
	assert_false(aiol_crypt_key_len_ok(&s, 48));
	assert_int_equal(aiol_crypt_spec_parse("aes-cbc-essiv:sha256", &s), 0);
	assert_int_equal(s.mode, AIOL_CRYPT_CBC_ESSIV);
	assert_true(aiol_crypt_key_len_ok(&s, 16));
	assert_true(aiol_crypt_key_len_ok(&s, 24));
	assert_true(aiol_crypt_key_len_ok(&s, 32));
	assert_false(aiol_crypt_key_len_ok(&s, 64));
	assert_int_equal(aiol_crypt_spec_parse("aes-xts-plain", &s), -EINVAL);
	assert_int_equal(aiol_crypt_spec_parse("aes-xts-plain64 ", &s), -EINVAL);
	assert_int_equal(aiol_crypt_spec_parse("aes-cbc-essiv:sha1", &s), -EINVAL);
	assert_int_equal(aiol_crypt_spec_parse("", &s), -EINVAL);
	assert_int_equal(aiol_crypt_spec_parse(NULL, &s), -EINVAL);
}

static void geom_and_iv(void **state)
{
	struct aiol_crypt_geom g = {.sector_size = 512};

	(void)state;
	assert_int_equal(aiol_crypt_geom_check(&g), 0);
	/* 512-byte sectors: the sector number, plus the offset. */
	assert_int_equal(aiol_crypt_iv_sector(&g, 0), 0);
	assert_int_equal(aiol_crypt_iv_sector(&g, 512), 1);
	assert_int_equal(aiol_crypt_iv_sector(&g, 1ull << 40), 1ull << 31);
	g.iv_offset = 7;
	assert_int_equal(aiol_crypt_iv_sector(&g, 1024), 9);
	/* 4096-byte sectors without large IVs: still counted in 512 bytes. */
	g = (struct aiol_crypt_geom){.sector_size = 4096};
	assert_int_equal(aiol_crypt_iv_sector(&g, 4096), 8);
	assert_int_equal(aiol_crypt_iv_sector(&g, 3 * 4096), 24);
	g.iv_offset = 16;
	assert_int_equal(aiol_crypt_iv_sector(&g, 4096), 24);
	/* With --iv-large-sectors: in 4096-byte units, the offset too. */
	g.iv_large_sectors = true;
	assert_int_equal(aiol_crypt_iv_sector(&g, 4096), 3);
	g.iv_offset = 0;
	assert_int_equal(aiol_crypt_iv_sector(&g, 5 * 4096), 5);
	/* dm-crypt wants the IV offset in whole encryption sectors. */
	g.iv_offset = 4;
	assert_int_equal(aiol_crypt_geom_check(&g), -EINVAL);
	g.iv_offset = 8;
	assert_int_equal(aiol_crypt_geom_check(&g), 0);
	g.sector_size = 1024;
	assert_int_equal(aiol_crypt_geom_check(&g), -EINVAL);
	g.sector_size = 0;
	assert_int_equal(aiol_crypt_geom_check(&g), -EINVAL);
}

/* ---- keys ---- */

/* Read a key of n bytes (0x5a each) through a pipe, as from stdin. */
static int key_from_pipe(const char *cipher, size_t n, struct aiol_crypt_key **out)
{
	struct aiol_crypt_spec s;
	uint8_t b[128];
	int p[2], ret;

	assert_true(n <= sizeof(b));
	assert_int_equal(aiol_crypt_spec_parse(cipher, &s), 0);
	memset(b, 0x5a, sizeof(b));
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], b, n), (ssize_t)n);
	close(p[1]);
	ret = aiol_crypt_key_read_fd(p[0], "(standard input)", &s, out);
	close(p[0]);
	return ret;
}

static void key_lengths(void **state)
{
	static const struct {
		const char *cipher;
		size_t len;
		bool ok;
	} cases[] = {
	    {"aes-xts-plain64", 32, true},	{"aes-xts-plain64", 64, true},
	    {"aes-xts-plain64", 0, false},	{"aes-xts-plain64", 31, false},
	    {"aes-xts-plain64", 33, false},	{"aes-xts-plain64", 65, false},
	    {"aes-xts-plain64", 128, false},	{"aes-xts-plain64", 16, false},
	    {"aes-cbc-essiv:sha256", 16, true}, {"aes-cbc-essiv:sha256", 24, true},
	    {"aes-cbc-essiv:sha256", 32, true}, {"aes-cbc-essiv:sha256", 64, false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aiol_crypt_key *k = NULL;
		int ret;

		logbuf[0] = 0;
		ret = key_from_pipe(cases[i].cipher, cases[i].len, &k);
		if (cases[i].ok) {
			assert_int_equal(ret, 0);
			assert_int_equal(aiol_crypt_key_len(k), cases[i].len);
			assert_int_equal(aiol_crypt_key_bytes(k)[0], 0x5a);
			assert_int_equal(aiol_crypt_key_bytes(k)[cases[i].len - 1], 0x5a);
			aiol_crypt_key_free(k);
		} else {
			assert_int_equal(ret, -EINVAL);
			assert_null(k);
			/* A clear error: which lengths fit. */
			assert_non_null(strstr(logbuf, "(standard input)"));
			assert_non_null(strstr(logbuf, "bytes ("));
		}
		/* Never a key byte in a message. */
		assert_null(strstr(logbuf, "ZZZZ"));
		assert_null(strstr(logbuf, "5a5a"));
	}
}

static void key_file_mode(void **state)
{
	struct aiol_crypt_spec s;
	struct aiol_crypt_key *k;
	char path[256];
	uint8_t b[64];
	int fd;

	(void)state;
	assert_int_equal(aiol_crypt_spec_parse("aes-xts-plain64", &s), 0);
	snprintf(path, sizeof(path), "%s/aioloop-test-key.XXXXXX", tmpdir());
	fd = mkstemp(path);
	assert_true(fd >= 0);
	memset(b, 0x33, sizeof(b));
	assert_int_equal(write(fd, b, sizeof(b)), (ssize_t)sizeof(b));
	close(fd);

	assert_int_equal(chmod(path, 0600), 0);
	logbuf[0] = 0;
	assert_int_equal(aiol_crypt_key_read(path, &s, &k), 0);
	assert_int_equal(aiol_crypt_key_len(k), 64);
	assert_null(strstr(logbuf, "readable"));
	aiol_crypt_key_free(k);

	assert_int_equal(chmod(path, 0644), 0);
	logbuf[0] = 0;
	assert_int_equal(aiol_crypt_key_read(path, &s, &k), 0);
	assert_non_null(strstr(logbuf, "readable by others"));
	assert_null(strstr(logbuf, "3333"));
	aiol_crypt_key_free(k);

	unlink(path);
	logbuf[0] = 0;
	assert_int_equal(aiol_crypt_key_read(path, &s, &k), -ENOENT);
	assert_non_null(strstr(logbuf, path));
}

/* Whether the build under test should have ciphers: meson says so
 * (AIOLOOP_TEST_CIPHERS, 0 for a build without GnuTLS); unset: yes. */
static bool ciphers_expected(void)
{
	const char *e = getenv("AIOLOOP_TEST_CIPHERS");

	return !e || strcmp(e, "0") != 0;
}

/* Whether this build has ciphers (a build without GnuTLS has none, and
 * must refuse every cipher: -ENOTSUP, checked here). */
static bool have_ciphers(void)
{
	static const uint8_t kb[32] = {1, 2, 3};
	struct aiol_crypt_geom g = {.sector_size = 512};
	struct aiol_crypt_spec s;
	struct aiol_crypt_key *k;
	struct cipher *c;
	int ret;

	assert_int_equal(aiol_crypt_spec_parse("aes-xts-plain64", &s), 0);
	assert_int_equal(aiol_crypt_key_new(kb, sizeof(kb), &k), 0);
	ret = cipher_create(&s, k, &g, &c);
	aiol_crypt_key_free(k);
	if (ret == -ENOTSUP && !ciphers_expected())
		return false;
	assert_int_equal(ret, 0);
	cipher_destroy(c);
	return true;
}

/* A build without ciphers: a valid stage over a file is refused with
 * -ENOTSUP (what makes serve, attach and bench say "built without"). */
static void refuses_without_ciphers(void)
{
	struct aiol_open_opts oo = {0};
	struct aiol_crypt_opts co = {.geom = {.sector_size = 512}};
	struct aiol_store *fst, *cst = NULL;
	char path[256];
	uint8_t kb[64] = {1};
	int fd;

	assert_false(ciphers_expected());
	snprintf(path, sizeof(path), "%s/aioloop-test-crypt-none.XXXXXX", tmpdir());
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	assert_int_equal(aiol_crypt_spec_parse("aes-xts-plain64", &co.spec), 0);
	assert_int_equal(aiol_crypt_key_new(kb, sizeof(kb), (struct aiol_crypt_key **)&co.key), 0);
	assert_int_equal(aiol_file_store_open(path, &oo, &fst), 0);
	assert_int_equal(aiol_crypt_store_open(fst, &co, &cst), -ENOTSUP);
	assert_null(cst);
	aiol_crypt_key_free((struct aiol_crypt_key *)co.key);
	unlink(path);
}

/* ---- known answers from an independent implementation ---- */

static bool have_reference(void)
{
	int st = system("python3 -c 'import cryptography' >/dev/null 2>&1");

	return st == 0;
}

static void write_file(const char *path, const void *b, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, n), (ssize_t)n);
	close(fd);
}

static void read_whole(const char *path, void *b, size_t n)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(read(fd, b, n), (ssize_t)n);
	close(fd);
}

/* What plain.py makes of plaintext at data offset 0: ciphertext in out. */
static void reference(const char *mode, const char *cipher, const char *keyp,
		      const struct aiol_crypt_geom *g, const char *in, const char *outp)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd),
		 "python3 %s %s --cipher %s --key-file %s --sector-size %u %s --iv-offset %llu "
		 "%s %s",
		 PLAIN_PY, mode, cipher, keyp, g->sector_size,
		 g->iv_large_sectors ? "--iv-large-sectors" : "", (unsigned long long)g->iv_offset,
		 in, outp);
	assert_int_equal(system(cmd), 0);
}

static void known_answers(void **state)
{
	static const struct {
		const char *cipher;
		size_t klen;
		unsigned int ss;
		bool large;
		uint64_t iv_offset;
	} cases[] = {
	    {"aes-xts-plain64", 32, 512, false, 0},
	    {"aes-xts-plain64", 64, 512, false, 0},
	    {"aes-xts-plain64", 64, 512, false, 12345},
	    {"aes-xts-plain64", 64, 4096, false, 0},
	    {"aes-xts-plain64", 64, 4096, true, 0},
	    {"aes-xts-plain64", 32, 4096, true, 80},
	    {"aes-xts-plain64", 64, 4096, false, 1ull << 40},
	    {"aes-cbc-essiv:sha256", 32, 512, false, 0},
	    {"aes-cbc-essiv:sha256", 16, 4096, true, 8},
	    {"aes-cbc-essiv:sha256", 24, 512, false, 3},
	};
	const size_t len = 64 * 1024;
	uint8_t *plain = malloc(len), *ours = malloc(len), *theirs = malloc(len);
	char dir[256], keyp[300], inp[300], outp[300];
	uint64_t seed = 0x13;

	(void)state;
	if (!have_ciphers()) {
		/* Built without GnuTLS: every cipher is refused (have_ciphers
		 * checked -ENOTSUP), and so is the stage. */
		refuses_without_ciphers();
		return;
	}
	if (!have_reference()) {
		print_message("skip - known_answers: python3-cryptography is not installed\n");
		skip();
	}
	snprintf(dir, sizeof(dir), "%s/aioloop-test-crypt.XXXXXX", tmpdir());
	assert_non_null(mkdtemp(dir));
	snprintf(keyp, sizeof(keyp), "%s/key", dir);
	snprintf(inp, sizeof(inp), "%s/in", dir);
	snprintf(outp, sizeof(outp), "%s/out", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aiol_crypt_geom g = {.sector_size = cases[i].ss,
					    .iv_large_sectors = cases[i].large,
					    .iv_offset = cases[i].iv_offset};
		struct aiol_crypt_spec s;
		struct aiol_crypt_key *k;
		struct cipher *c;
		uint8_t kb[64];

		eng_rand_fill(&seed, kb, sizeof(kb));
		eng_rand_fill(&seed, plain, len);
		assert_int_equal(aiol_crypt_spec_parse(cases[i].cipher, &s), 0);
		assert_int_equal(aiol_crypt_key_new(kb, cases[i].klen, &k), 0);
		assert_int_equal(cipher_create(&s, k, &g, &c), 0);
		write_file(keyp, kb, cases[i].klen);
		write_file(inp, plain, len);

		/* Encryption, out of place, equals the reference's. */
		reference("encrypt", cases[i].cipher, keyp, &g, inp, outp);
		read_whole(outp, theirs, len);
		assert_int_equal(cipher_encrypt(c, 0, plain, ours, len), 0);
		assert_memory_equal(ours, theirs, len);
		assert_memory_not_equal(ours, plain, 4096);
		/* In place too, and from the middle of the data. */
		memcpy(ours, plain, len);
		assert_int_equal(cipher_encrypt(c, 0, ours, ours, len / 2), 0);
		assert_int_equal(
		    cipher_encrypt(c, len / 2, ours + len / 2, ours + len / 2, len / 2), 0);
		assert_memory_equal(ours, theirs, len);
		/* Decryption in place gives the plaintext back. */
		assert_int_equal(cipher_decrypt(c, 0, ours, len), 0);
		assert_memory_equal(ours, plain, len);
		/* Zeroes (src NULL) are the encryption of a zeroed buffer. */
		memset(plain, 0, len);
		write_file(inp, plain, len);
		reference("encrypt", cases[i].cipher, keyp, &g, inp, outp);
		read_whole(outp, theirs, len);
		assert_int_equal(cipher_encrypt(c, 0, NULL, ours, len), 0);
		assert_memory_equal(ours, theirs, len);

		cipher_destroy(c);
		aiol_crypt_key_free(k);
	}
	unlink(keyp);
	unlink(inp);
	unlink(outp);
	rmdir(dir);
	free(plain);
	free(ours);
	free(theirs);
}

/* ---- the stage under the engine ---- */

#define STAGE_WINDOW 8192u
#define STAGE_SIZE (4u << 20)

static const char *engines[] = {"uring", "aio", "threads", "sync"};

static void stage_case(enum aiol_engine engine, unsigned int ss, bool large, uint64_t iv_offset,
		       unsigned int threads)
{
	struct aiol_open_opts oo = {
	    .offset = STAGE_WINDOW, .sizelimit = STAGE_SIZE, .engine = engine};
	struct aiol_crypt_opts co = {
	    .geom = {.sector_size = ss, .iv_large_sectors = large, .iv_offset = iv_offset},
	    .threads = threads};
	struct aiol_loop_opts lo = {0};
	struct aiol_queue_opts qo = {.depth = 16};
	uint8_t *shadow = calloc(1, STAGE_SIZE), *buf = malloc(STAGE_SIZE);
	char path[256], keyp[300], outp[300], cmd[2048];
	struct aiol_store *fst, *cst;
	struct aiol_extent ext[4];
	struct eng_env e = {0};
	uint64_t seed = 0x1300 + ss + engine;
	uint8_t kb[64];
	int fd;

	snprintf(path, sizeof(path), "%s/aioloop-test-crypt-stage.XXXXXX", tmpdir());
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, STAGE_WINDOW + STAGE_SIZE), 0);
	close(fd);
	snprintf(keyp, sizeof(keyp), "%s.key", path);
	snprintf(outp, sizeof(outp), "%s.plain", path);
	eng_rand_fill(&seed, kb, sizeof(kb));
	write_file(keyp, kb, sizeof(kb));

	assert_int_equal(aiol_crypt_spec_parse("aes-xts-plain64", &co.spec), 0);
	assert_int_equal(aiol_crypt_key_new(kb, sizeof(kb), (struct aiol_crypt_key **)&co.key), 0);
	assert_int_equal(aiol_loop_create(&lo, &e.loop), 0);
	assert_int_equal(aiol_file_store_open(path, &oo, &fst), 0);
	assert_int_equal(aiol_crypt_store_open(fst, &co, &cst), 0);
	aiol_crypt_key_free((struct aiol_crypt_key *)co.key);
	assert_int_equal(aiol_dev_open_store(cst, &e.dev), 0);
	assert_int_equal(aiol_queue_create(e.dev, e.loop, &qo, &e.q), 0);
	e.info = aiol_dev_info(e.dev);
	assert_int_equal(e.info->size, STAGE_SIZE);
	assert_true(e.info->block_size >= ss);
	/* Write-zeroes is done by writing, never fast; discard is refused. */
	assert_true(e.info->caps & AIOL_CAP_WRITE_ZEROES);
	assert_false(e.info->caps & AIOL_CAP_FAST_ZERO);
	assert_false(e.info->caps & AIOL_CAP_DISCARD);

	/* A fresh file decrypts to garbage: fill the device first (one
	 * write of several encryption chunks). */
	eng_rand_fill(&seed, shadow, STAGE_SIZE);
	assert_int_equal(eng_run(&e, AIOL_OP_WRITE, 0, STAGE_SIZE, shadow, 0), 0);
	/* Random writes of any offset and length, some FUA, some of them
	 * overlapping, then an unaligned write-zeroes of each kind. */
	for (int i = 0; i < 40; i++) {
		uint64_t off = eng_rand_range(&seed, 0, STAGE_SIZE - 1);
		uint64_t len = eng_rand_range(&seed, 1, i % 4 ? 9000 : 1100000);

		if (off + len > STAGE_SIZE)
			len = STAGE_SIZE - off;
		eng_rand_fill(&seed, buf, len);
		memcpy(shadow + off, buf, len);
		assert_int_equal(eng_run(&e, AIOL_OP_WRITE, off, len, buf, i % 3 ? 0 : AIOL_F_FUA),
				 0);
	}
	assert_int_equal(eng_run(&e, AIOL_OP_WRITE_ZEROES, 1000, 70000, NULL, 0), 0);
	memset(shadow + 1000, 0, 70000);
	assert_int_equal(eng_run(&e, AIOL_OP_WRITE_ZEROES, 65536, 131072, NULL, AIOL_F_NO_UNMAP),
			 0);
	memset(shadow + 65536, 0, 131072);
	assert_int_equal(eng_run(&e, AIOL_OP_WRITE_ZEROES, 1 << 20, 1 << 20, NULL, AIOL_F_FUA), 0);
	memset(shadow + (1 << 20), 0, 1 << 20);
	assert_int_equal(eng_run(&e, AIOL_OP_FLUSH, 0, 0, NULL, 0), 0);
	assert_int_equal(eng_run(&e, AIOL_OP_DISCARD, 0, 65536, NULL, 0), -EOPNOTSUPP);
	assert_int_equal(eng_run(&e, AIOL_OP_WRITE_ZEROES, 0, 4096, NULL, AIOL_F_FAST_ONLY),
			 -EOPNOTSUPP);
	memset(ext, 0xff, sizeof(ext));
	{
		struct eng_op op;

		eng_op_init(&op, AIOL_OP_BLOCK_STATUS, 4096, 1 << 20, NULL, 0);
		op.req.ext = ext;
		op.req.ext_max = 4;
		assert_int_equal(eng_submit(&e, &op), 0);
		assert_int_equal(eng_drain(&e, 10000), 0);
		assert_int_equal(op.res, 0);
		assert_int_equal(op.req.ext_count, 1);
		assert_int_equal(ext[0].len, 1 << 20);
		assert_int_equal(ext[0].flags, 0);
	}
	/* Unaligned reads match. */
	for (int i = 0; i < 20; i++) {
		uint64_t off = eng_rand_range(&seed, 0, STAGE_SIZE - 1);
		uint64_t len = eng_rand_range(&seed, 1, 300000);

		if (off + len > STAGE_SIZE)
			len = STAGE_SIZE - off;
		assert_int_equal(eng_run(&e, AIOL_OP_READ, off, len, buf + 1, 0), 0);
		assert_memory_equal(buf + 1, shadow + off, len);
	}
	assert_int_equal(eng_run(&e, AIOL_OP_READ, 0, STAGE_SIZE, buf, 0), 0);
	assert_memory_equal(buf, shadow, STAGE_SIZE);
	eng_env_close(&e);

	/* The file, decrypted by the independent implementation. */
	if (have_reference()) {
		snprintf(cmd, sizeof(cmd),
			 "python3 %s decrypt --key-file %s --sector-size %u %s --iv-offset %llu "
			 "--offset %u --size %u %s %s",
			 PLAIN_PY, keyp, ss, large ? "--iv-large-sectors" : "",
			 (unsigned long long)iv_offset, STAGE_WINDOW, STAGE_SIZE, path, outp);
		assert_int_equal(system(cmd), 0);
		read_whole(outp, buf, STAGE_SIZE);
		assert_memory_equal(buf, shadow, STAGE_SIZE);
		unlink(outp);
	}
	unlink(keyp);
	unlink(path);
	free(shadow);
	free(buf);
}

static void stage_engines(void **state)
{
	(void)state;
	if (!have_ciphers()) {
		refuses_without_ciphers();
		return;
	}
	for (unsigned int i = 0; i < 4; i++) {
		enum aiol_engine eng;

		assert_int_equal(aiol_engine_parse(engines[i], &eng), 0);
		/* On the loop thread only, then with crypto threads. */
		stage_case(eng, 512, false, 0, 0);
		stage_case(eng, 4096, i % 2, i * 8, 2);
		stage_case(eng, 512, true, 3, 1);
	}
}

static void stage_refuses_bad_geometry(void **state)
{
	struct aiol_open_opts oo = {0};
	struct aiol_crypt_opts co = {.geom = {.sector_size = 4096, .iv_offset = 3}};
	struct aiol_store *fst, *cst;
	char path[256];
	uint8_t kb[48] = {1};
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/aioloop-test-crypt-geom.XXXXXX", tmpdir());
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	assert_int_equal(aiol_crypt_spec_parse("aes-xts-plain64", &co.spec), 0);
	assert_int_equal(aiol_crypt_key_new(kb, 32, (struct aiol_crypt_key **)&co.key), 0);
	/* An IV offset that is not whole sectors. */
	assert_int_equal(aiol_file_store_open(path, &oo, &fst), 0);
	assert_int_equal(aiol_crypt_store_open(fst, &co, &cst), -EINVAL);
	aiol_crypt_key_free((struct aiol_crypt_key *)co.key);
	/* A key of a length the cipher does not take. */
	co.geom.iv_offset = 0;
	assert_int_equal(aiol_crypt_key_new(kb, 48, (struct aiol_crypt_key **)&co.key), 0);
	assert_int_equal(aiol_file_store_open(path, &oo, &fst), 0);
	assert_int_equal(aiol_crypt_store_open(fst, &co, &cst), -EINVAL);
	aiol_crypt_key_free((struct aiol_crypt_key *)co.key);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(spec_parse, setup_log),
	    cmocka_unit_test_setup(geom_and_iv, setup_log),
	    cmocka_unit_test_setup(key_lengths, setup_log),
	    cmocka_unit_test_setup(key_file_mode, setup_log),
	    cmocka_unit_test_setup(known_answers, setup_log),
	    cmocka_unit_test_setup(stage_engines, setup_log),
	    cmocka_unit_test_setup(stage_refuses_bad_geometry, setup_log),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
