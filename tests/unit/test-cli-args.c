// SPDX-License-Identifier: MIT
/*
 * Unit tests of the command line's parsing (cli/args.c and the
 * subcommands' parse functions): every number is a whole number or a size
 * within the option's range, with no sign, blank or trailing junk, no
 * wrap-around at 2^64 or through a suffix, and a message that names the
 * option; and what serve, attach and bench command lines mean as config
 * structs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ublk.h"

/* ---- whole numbers ---- */

static void test_uint_accepts(void **state)
{
	struct cli_err err;
	uint64_t v;

	(void)state;
	assert_int_equal(cli_parse_uint("--n", "0", 0, 10, &v, &err), 0);
	assert_int_equal(v, 0);
	assert_int_equal(cli_parse_uint("--n", "10", 0, 10, &v, &err), 0);
	assert_int_equal(v, 10);
	/* a leading zero is decimal, not octal */
	assert_int_equal(cli_parse_uint("--n", "010", 0, 100, &v, &err), 0);
	assert_int_equal(v, 10);
	assert_int_equal(cli_parse_uint("--n", "0x10", 0, 100, &v, &err), 0);
	assert_int_equal(v, 16);
	assert_int_equal(cli_parse_uint("--n", "18446744073709551615", 0, UINT64_MAX, &v, &err), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(cli_parse_uint("--n", "0xffffffffffffffff", 0, UINT64_MAX, &v, &err), 0);
	assert_true(v == UINT64_MAX);
}

/* Every rejection leaves *out alone and names the option and range. */
static void check_uint_refused(const char *s, uint64_t min, uint64_t max, int want)
{
	struct cli_err err = {{0}};
	uint64_t v = 12345;
	char range[64];

	assert_int_equal(cli_parse_uint("--count", s, min, max, &v, &err), want);
	assert_true(v == 12345);
	assert_non_null(strstr(err.msg, "--count"));
	snprintf(range, sizeof(range), "from %llu to %llu", (unsigned long long)min,
		 (unsigned long long)max);
	assert_non_null(strstr(err.msg, range));
}

static void test_uint_refuses(void **state)
{
	(void)state;
	check_uint_refused("", 0, 10, -EINVAL);
	check_uint_refused("-1", 0, 10, -EINVAL);
	check_uint_refused("-0", 0, 10, -EINVAL);
	check_uint_refused("+1", 0, 10, -EINVAL);
	check_uint_refused(" 1", 0, 10, -EINVAL);
	check_uint_refused("1 ", 0, 10, -EINVAL);
	check_uint_refused("80x", 1, 65535, -EINVAL);
	check_uint_refused("4k", 0, 10000, -EINVAL); /* counts take no suffix */
	check_uint_refused("1.5", 0, 10, -EINVAL);
	check_uint_refused("0x", 0, 10, -EINVAL);
	check_uint_refused("0xg", 0, 10, -EINVAL);
	check_uint_refused("abc", 0, 10, -EINVAL);
	check_uint_refused("99999", 1, 65535, -ERANGE);
	check_uint_refused("0", 1, 65535, -ERANGE);
	check_uint_refused("65536", 1, 65535, -ERANGE);
	/* 2^64 and beyond do not wrap */
	check_uint_refused("18446744073709551616", 0, UINT64_MAX, -ERANGE);
	check_uint_refused("0x10000000000000000", 0, UINT64_MAX, -ERANGE);
	check_uint_refused("99999999999999999999999999", 0, UINT64_MAX, -ERANGE);
	/* 2^32 + 1 does not wrap to 1 in the unsigned int version either */
	check_uint_refused("4294967297", 0, UINT32_MAX, -ERANGE);
}

static void test_uint32(void **state)
{
	struct cli_err err;
	unsigned int v = 7;

	(void)state;
	assert_int_equal(cli_parse_uint32("--qd", "4096", 1, 4096, &v, &err), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(cli_parse_uint32("--qd", "4097", 1, 4096, &v, &err), -ERANGE);
	assert_int_equal(v, 4096);
	assert_int_equal(cli_parse_uint32("--qd", "4294967297", 1, 4096, &v, &err), -ERANGE);
	assert_non_null(strstr(err.msg, "--qd '4294967297': out of range"));
}

static void test_block_size(void **state)
{
	struct cli_err err;
	unsigned int v = 0;

	(void)state;
	assert_int_equal(cli_parse_block_size("-b", "512", &v, &err), 0);
	assert_int_equal(v, 512);
	assert_int_equal(cli_parse_block_size("-b", "4k", &v, &err), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(cli_parse_block_size("-b", "1000", &v, &err), -ERANGE);
	assert_string_equal(err.msg, "-b '1000': not a block size (512 or 4096, also written 4k)");
	assert_int_equal(cli_parse_block_size("-b", "0", &v, &err), -ERANGE);
	assert_int_equal(cli_parse_block_size("-b", "-512", &v, &err), -EINVAL);
	assert_int_equal(cli_parse_block_size("-b", "512x", &v, &err), -EINVAL);
	assert_int_equal(v, 4096);
}

static void test_port(void **state)
{
	struct cli_err err;
	char buf[8] = "";

	(void)state;
	assert_int_equal(cli_parse_port("--port", "10809", buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "10809");
	/* canonical form: what getaddrinfo() gets cannot be read otherwise */
	assert_int_equal(cli_parse_port("--port", "0x2a39", buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "10809");
	assert_int_equal(cli_parse_port("--port", "65535", buf, sizeof(buf), &err), 0);
	assert_string_equal(buf, "65535");
	assert_int_equal(cli_parse_port("--port", "99999", buf, sizeof(buf), &err), -ERANGE);
	assert_string_equal(err.msg,
			    "--port '99999': out of range (a whole number from 1 to 65535)");
	assert_int_equal(cli_parse_port("--port", "0", buf, sizeof(buf), &err), -ERANGE);
	assert_int_equal(cli_parse_port("--port", "-1", buf, sizeof(buf), &err), -EINVAL);
	assert_int_equal(cli_parse_port("--port", "nbd", buf, sizeof(buf), &err), -EINVAL);
	assert_string_equal(buf, "65535");
}

/* ---- sizes ---- */

static void check_size(const char *s, uint64_t want)
{
	struct cli_err err = {{0}};
	uint64_t v = 0;

	assert_int_equal(cli_parse_size("--size", s, 0, UINT64_MAX, &v, &err), 0);
	assert_true(v == want);
}

static void test_size_accepts(void **state)
{
	(void)state;
	check_size("0", 0);
	check_size("512", 512);
	check_size("512b", 512);
	check_size("512B", 512);
	check_size("4k", 4096);
	check_size("4K", 4096);
	check_size("4KiB", 4096);
	check_size("4kb", 4096);
	check_size("3M", 3ull << 20);
	check_size("1G", 1ull << 30);
	check_size("2T", 2ull << 40);
	check_size("0x1000", 4096);
	check_size("0x10k", 16384);
	check_size("16777215T", 16777215ull << 40);
}

static void check_size_refused(const char *s, uint64_t min, uint64_t max, int want)
{
	struct cli_err err = {{0}};
	uint64_t v = 12345;

	assert_int_equal(cli_parse_size("--offset", s, min, max, &v, &err), want);
	assert_true(v == 12345);
	assert_non_null(strstr(err.msg, "--offset"));
	assert_non_null(strstr(err.msg, "suffix"));
}

static void test_size_refuses(void **state)
{
	struct cli_err err;
	uint64_t v;

	(void)state;
	check_size_refused("", 0, UINT64_MAX, -EINVAL);
	check_size_refused("-5", 0, UINT64_MAX, -EINVAL);
	check_size_refused("-0", 0, UINT64_MAX, -EINVAL);
	check_size_refused(" 4k", 0, UINT64_MAX, -EINVAL);
	check_size_refused("k", 0, UINT64_MAX, -EINVAL);
	check_size_refused("1Q", 0, UINT64_MAX, -EINVAL);
	check_size_refused("4kk", 0, UINT64_MAX, -EINVAL);
	check_size_refused("4k ", 0, UINT64_MAX, -EINVAL);
	check_size_refused("4kiBx", 0, UINT64_MAX, -EINVAL);
	check_size_refused("4bk", 0, UINT64_MAX, -EINVAL);
	check_size_refused("4i", 0, UINT64_MAX, -EINVAL);
	check_size_refused("1.5G", 0, UINT64_MAX, -EINVAL);
	/* overflow: of the digits, and through the suffix */
	check_size_refused("18446744073709551616", 0, UINT64_MAX, -ERANGE);
	check_size_refused("99999999999999999T", 0, UINT64_MAX, -ERANGE);
	check_size_refused("16777216T", 0, UINT64_MAX, -ERANGE);
	check_size_refused("17179869184G", 0, UINT64_MAX, -ERANGE);
	/* the option's own range */
	check_size_refused("0", 1, 64 << 20, -ERANGE);
	check_size_refused("65M", 1, 64 << 20, -ERANGE);
	check_size_refused("8E", 0, INT64_MAX, -EINVAL);
	check_size_refused("8388608T", 0, INT64_MAX, -ERANGE);

	assert_int_equal(cli_parse_size("--bs", "128M", 1, 64 << 20, &v, &err), -ERANGE);
	assert_string_equal(err.msg, "--bs '128M': out of range (bytes with an optional K, M, G or "
				     "T suffix, from 1 to 64M)");
}

/* ---- seconds ---- */

static void test_seconds(void **state)
{
	static const char *const bad[] = {"", "0", "0.0", "-1", "-0", "+1", " 1", "1s", "inf",
					  "nan", "0x10", "86401", "1e9", ".", "1..2"};
	struct cli_err err;
	double v = 0;

	(void)state;
	assert_int_equal(cli_parse_seconds("--seconds", "0.5", 86400, &v, &err), 0);
	assert_true(v == 0.5);
	assert_int_equal(cli_parse_seconds("--seconds", "10", 86400, &v, &err), 0);
	assert_true(v == 10);
	assert_int_equal(cli_parse_seconds("--seconds", ".25", 86400, &v, &err), 0);
	assert_true(v == 0.25);
	assert_int_equal(cli_parse_seconds("--seconds", "1e3", 86400, &v, &err), 0);
	assert_true(v == 1000);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		err.msg[0] = '\0';
		assert_true(cli_parse_seconds("--seconds", bad[i], 86400, &v, &err) < 0);
		assert_true(v == 7);
		assert_non_null(strstr(err.msg, "--seconds"));
	}
}

/* ---- subcommands ---- */

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
#define SERVE(cfg, err, ...) serve_parse_args(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), cfg, err)
#define ATTACH(cfg, err, ...) attach_parse_args(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), cfg, err)
#define BENCH(o, err, ...) bench_parse_args(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), o, err)

static void test_serve_config(void **state)
{
	struct serve_config cfg;
	struct cli_err err;
	char ex1[] = "a=/dev/null,ro,offset=4k,sizelimit=1M";

	(void)state;
	assert_int_equal(SERVE(&cfg, &err, "serve", "disk.img"), CLI_RUN);
	assert_int_equal(cfg.nex, 1);
	assert_string_equal(cfg.ex[0].file, "disk.img");
	assert_string_equal(cfg.ex[0].name, "");
	assert_null(cfg.port);
	assert_int_equal(cfg.server.threads, 0);
	assert_int_equal(cfg.server.poll_us, 0);

	assert_int_equal(SERVE(&cfg, &err, "serve", "-p", "10810", "-t", "2", "--offset", "4k",
			       "--sizelimit", "1M", "--block-size", "4096", "--poll", "0",
			       "--max-connections", "3", "--max-inflight", "256M",
			       "--max-conn-inflight", "16M", "--handshake-timeout", "5",
			       "--payload-timeout", "7", "--export", ex1, "-v", "-v", "disk.img"),
			 CLI_RUN);
	assert_string_equal(cfg.port, "10810");
	assert_int_equal(cfg.server.threads, 2);
	assert_int_equal(cfg.ex[0].offset, 4096);
	assert_int_equal(cfg.ex[0].sizelimit, 1 << 20);
	assert_int_equal(cfg.open.block_size, 4096);
	assert_int_equal(cfg.server.poll_us, -1);
	assert_int_equal(cfg.server.max_connections, 3);
	assert_true(cfg.server.max_inflight == 256u << 20);
	assert_true(cfg.server.max_conn_inflight == 16u << 20);
	assert_int_equal(cfg.server.handshake_timeout_ms, 5000);
	assert_int_equal(cfg.server.payload_timeout_ms, 7000);
	assert_int_equal(cfg.verbose, 2);
	assert_int_equal(cfg.nex, 2);
	assert_string_equal(cfg.ex[1].name, "a");
	assert_string_equal(cfg.ex[1].file, "/dev/null");
	assert_true(cfg.ex[1].ro);
	assert_int_equal(cfg.ex[1].offset, 4096);
	assert_int_equal(cfg.ex[1].sizelimit, 1 << 20);

	/* no FILE: the demo image (file NULL) */
	assert_int_equal(SERVE(&cfg, &err, "serve", "-U", "s.sock"), CLI_RUN);
	assert_null(cfg.ex[0].file);
	assert_int_equal(SERVE(&cfg, &err, "serve", "--help"), CLI_HELP);
	assert_int_equal(SERVE(&cfg, &err, "serve", "-V"), CLI_VERSION);
}

static void check_serve_refused(const char *opt, const char *val, const char *name)
{
	struct serve_config cfg;
	struct cli_err err = {{0}};
	char *argv[] = {"serve", (char *)opt, (char *)val, "disk.img", NULL};

	assert_int_equal(serve_parse_args(4, argv, &cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, name));
}

static void test_serve_refuses(void **state)
{
	char ex[] = "a=f,offset=1Q";

	(void)state;
	check_serve_refused("-p", "99999", "--port");
	check_serve_refused("-p", "0", "--port");
	check_serve_refused("-p", "-1", "--port");
	check_serve_refused("-p", "80x", "--port");
	check_serve_refused("--port", "", "--port");
	check_serve_refused("--offset", "1Q", "--offset");
	check_serve_refused("--offset", "-1", "--offset");
	check_serve_refused("--offset", "8388608T", "--offset");
	check_serve_refused("--sizelimit", "-5", "--sizelimit");
	check_serve_refused("--block-size", "1000", "--block-size");
	check_serve_refused("--block-size", "4096x", "--block-size");
	check_serve_refused("--block-size", "8k", "--block-size");
	check_serve_refused("-t", "0", "--threads");
	check_serve_refused("-t", "1025", "--threads");
	check_serve_refused("--max-connections", "4294967296", "--max-connections");
	check_serve_refused("--max-connections", "-1", "--max-connections");
	check_serve_refused("--max-inflight", "1Q", "--max-inflight");
	check_serve_refused("--max-conn-inflight", "0", "--max-conn-inflight");
	check_serve_refused("--poll", "1000001", "--poll");
	check_serve_refused("--poll", "-1", "--poll");
	check_serve_refused("--handshake-timeout", "0", "--handshake-timeout");
	check_serve_refused("--payload-timeout", "3601", "--payload-timeout");
	check_serve_refused("--payload-timeout", "1e3", "--payload-timeout");
	check_serve_refused("--export", ex, "--export offset");
}

static void test_attach_config(void **state)
{
	struct attach_config cfg;
	struct cli_err err;

	(void)state;
	assert_int_equal(ATTACH(&cfg, &err, "attach", "f.img"), CLI_RUN);
	assert_string_equal(cfg.file, "f.img");
	assert_int_equal(cfg.queues, 1);
	assert_int_equal(cfg.depth, 64);
	assert_int_equal(cfg.fe, ATTACH_AUTO);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--nbd", "-o", "4k", "--sizelimit", "1G",
				"-b", "512", "--queues", "64", "--depth", "4096", "f.img"),
			 CLI_RUN);
	assert_int_equal(cfg.fe, ATTACH_NBD);
	assert_int_equal(cfg.open.offset, 4096);
	assert_true(cfg.open.sizelimit == 1ull << 30);
	assert_int_equal(cfg.open.block_size, 512);
	assert_int_equal(cfg.queues, 64);
	assert_int_equal(cfg.depth, 4096);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--recover", "/dev/ublkb0"), CLI_RUN);
	assert_string_equal(cfg.recover, "/dev/ublkb0");
	assert_null(cfg.file);

	assert_int_equal(ATTACH(&cfg, &err, "attach", "--queues", "0", "f"), -EINVAL);
	assert_non_null(strstr(err.msg, "--queues '0'"));
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--queues", "65", "f"), -EINVAL);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--depth", "1", "f"), -EINVAL);
	assert_non_null(strstr(err.msg, "--depth"));
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--depth", "4097", "f"), -EINVAL);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--depth", "1k", "f"), -EINVAL);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "-o", "-1", "f"), -EINVAL);
	assert_non_null(strstr(err.msg, "--offset"));
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--sizelimit", "99999999999999999T", "f"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "--sizelimit"));
	assert_int_equal(ATTACH(&cfg, &err, "attach", "-b", "4097", "f"), -EINVAL);
	assert_non_null(strstr(err.msg, "--block-size"));
	assert_int_equal(ATTACH(&cfg, &err, "attach"), -EINVAL);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--recover", "d", "f"), -EINVAL);

	/* ublk's data path and polling */
	assert_int_equal(ATTACH(&cfg, &err, "attach", "f"), CLI_RUN);
	assert_int_equal(cfg.data_path, UBLK_DP_AUTO);
	assert_int_equal(cfg.poll_us, 0);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--data-path", "zero-copy", "--poll", "0",
				"f"),
			 CLI_RUN);
	assert_int_equal(cfg.data_path, UBLK_DP_ANY_ZERO_COPY);
	assert_int_equal(cfg.poll_us, -1);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--data-path", "copy", "--poll", "200", "f"),
			 CLI_RUN);
	assert_int_equal(cfg.data_path, UBLK_DP_COPY);
	assert_int_equal(cfg.poll_us, 200);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--data-path", "zerocopy", "f"), -EINVAL);
	assert_non_null(strstr(err.msg, "--data-path 'zerocopy'"));
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--poll", "1000001", "f"), -EINVAL);
	assert_non_null(strstr(err.msg, "--poll"));

	/* the kernel NBD client's request timeout: -1 when not given */
	assert_int_equal(ATTACH(&cfg, &err, "attach", "f"), CLI_RUN);
	assert_int_equal(cfg.nbd_timeout, -1);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--nbd", "--timeout", "0", "f"), CLI_RUN);
	assert_int_equal(cfg.nbd_timeout, 0);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--nbd", "--timeout", "5", "--recovery",
				"fail-io", "f"),
			 CLI_RUN);
	assert_int_equal(cfg.nbd_timeout, 5);
	assert_int_equal(cfg.recovery, UBLK_REC_FAIL_IO);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--timeout", "86401", "f"), -EINVAL);
	assert_non_null(strstr(err.msg, "--timeout"));
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--timeout", "-1", "f"), -EINVAL);

	/* losetup's -P and -L; --data-path is no longer -P's long form */
	assert_int_equal(ATTACH(&cfg, &err, "attach", "f"), CLI_RUN);
	assert_int_equal(cfg.partscan, -1);
	assert_false(cfg.nooverlap);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "-P", "-L", "f"), CLI_RUN);
	assert_int_equal(cfg.partscan, 1);
	assert_true(cfg.nooverlap);
	assert_int_equal(cfg.data_path, UBLK_DP_AUTO);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--partscan", "--nooverlap", "f"), CLI_RUN);
	assert_int_equal(cfg.partscan, 1);
	assert_true(cfg.nooverlap);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--no-partscan", "f"), CLI_RUN);
	assert_int_equal(cfg.partscan, 0);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--recover", "/dev/ublkb0", "-P"), -EINVAL);
	assert_int_equal(ATTACH(&cfg, &err, "attach", "--recover", "/dev/ublkb0", "-L"), -EINVAL);
}

static void test_bench_config(void **state)
{
	struct bench_opts o;
	struct cli_err err;

	(void)state;
	assert_int_equal(BENCH(&o, &err, "bench"), CLI_RUN);
	assert_int_equal(o.bs, 4096);
	assert_int_equal(o.qd, 32);
	assert_null(o.file);
	assert_int_equal(BENCH(&o, &err, "bench", "--bs=1M", "--qd=256", "--seconds=0.5",
			       "--size=64M", "--threads=8", "--submit-batch=0", "--rw=write", "f"),
			 CLI_RUN);
	assert_true(o.bs == 1u << 20);
	assert_int_equal(o.qd, 256);
	assert_true(o.seconds == 0.5);
	assert_true(o.size == 64u << 20);
	assert_int_equal(o.threads, 8);
	assert_int_equal(o.submit_batch, 0);
	assert_int_equal(o.rw, RW_WRITE);
	assert_string_equal(o.file, "f");

	assert_int_equal(BENCH(&o, &err, "bench", "--qd=0"), -EINVAL);
	assert_non_null(strstr(err.msg, "--qd"));
	assert_int_equal(BENCH(&o, &err, "bench", "--qd=4097"), -EINVAL);
	assert_int_equal(BENCH(&o, &err, "bench", "--qd=32x"), -EINVAL);
	assert_int_equal(BENCH(&o, &err, "bench", "--bs=0"), -EINVAL);
	assert_non_null(strstr(err.msg, "--bs"));
	assert_int_equal(BENCH(&o, &err, "bench", "--bs=65M"), -EINVAL);
	assert_int_equal(BENCH(&o, &err, "bench", "--size=-1"), -EINVAL);
	assert_non_null(strstr(err.msg, "--size"));
	assert_int_equal(BENCH(&o, &err, "bench", "--seconds=-1"), -EINVAL);
	assert_non_null(strstr(err.msg, "--seconds"));
	assert_int_equal(BENCH(&o, &err, "bench", "--threads=0"), -EINVAL);
	assert_non_null(strstr(err.msg, "--threads"));
	assert_int_equal(BENCH(&o, &err, "bench", "--submit-batch=4097"), -EINVAL);
	assert_non_null(strstr(err.msg, "--submit-batch"));
	/* in range each, too much together */
	assert_int_equal(BENCH(&o, &err, "bench", "--bs=64M", "--qd=8"), -EINVAL);
	assert_non_null(strstr(err.msg, "256M"));
}

/* ---- configuration files ---- */

static void test_conf_serve(void **state)
{
	struct serve_config cfg;
	struct cli_argv av;
	struct cli_err err;

	(void)state;
	memset(&av, 0, sizeof(av));
	assert_int_equal(cli_conf_args("x\n", "t.conf", serve_longopts, &av, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "t.conf:1"));
	cli_argv_free(&av);

	{
		const char *conf = "# an instance\n"
				   "\n"
				   "  socket = /run/aioloop/vm1.sock  \n"
				   "export-name=vm1\n"
				   "threads = 2\n"
				   "read-only = yes\n"
				   "fork = no\n"
				   "direct =\n"
				   "max-inflight = 256M\n"
				   "export = a=/dev/null,ro,offset=4k\n"
				   "export = b=/dev/zero\n"
				   "; another comment\n"
				   "file = /var/lib/vm1.img\n";
		struct cli_argv a = {0};

		assert_int_equal(cli_conf_args(conf, "t.conf", serve_longopts, &a, &err), 0);
		assert_int_equal(a.argc, 9);
		assert_string_equal(a.argv[0], "--socket=/run/aioloop/vm1.sock");
		assert_string_equal(a.argv[3], "--read-only");
		assert_string_equal(a.argv[4], "--direct");
		assert_string_equal(a.argv[6], "--export=a=/dev/null,ro,offset=4k");
		assert_string_equal(a.argv[8], "/var/lib/vm1.img");
		assert_null(a.argv[9]);
		cli_argv_free(&a);
	}

	/* The same text through serve's own parser, with argv[0] in front. */
	{
		struct cli_argv a = {0};
		char *argv0 = "serve";
		const char *conf = "socket = /run/aioloop/vm1.sock\n"
				   "threads = 2\n"
				   "read-only = on\n"
				   "export = a=/dev/null,ro,offset=4k\n"
				   "file = /var/lib/vm1.img\n";
		a.argv = calloc(2, sizeof(char *));
		a.owned = calloc(2, sizeof(bool));
		a.argv[0] = argv0;
		a.argc = 1;
		assert_int_equal(cli_conf_args(conf, "t.conf", serve_longopts, &a, &err), 0);
		assert_int_equal(serve_parse_args(a.argc, a.argv, &cfg, &err), CLI_RUN);
		assert_string_equal(cfg.sock, "/run/aioloop/vm1.sock");
		assert_int_equal(cfg.server.threads, 2);
		assert_true(cfg.ro);
		assert_int_equal(cfg.nex, 2);
		assert_string_equal(cfg.ex[0].file, "/var/lib/vm1.img");
		assert_string_equal(cfg.ex[1].name, "a");
		assert_int_equal(cfg.ex[1].offset, 4096);
		cli_argv_free(&a);
	}
}

/* A value is refused in a file with the command line's own message. */
static void check_conf_refused(const struct option *opts, const char *conf, const char *want)
{
	struct cli_argv a = {0};
	struct cli_err err = {{0}};
	char *argv0 = "serve";
	int ret;

	a.argv = calloc(2, sizeof(char *));
	a.owned = calloc(2, sizeof(bool));
	a.argv[0] = argv0;
	a.argc = 1;
	ret = cli_conf_args(conf, "t.conf", opts, &a, &err);
	if (ret == 0)
		ret = opts == serve_longopts
			  ? serve_parse_args(a.argc, a.argv, &(struct serve_config){0}, &err)
			  : attach_parse_args(a.argc, a.argv, &(struct attach_config){0}, &err);
	assert_int_equal(ret, -EINVAL);
	assert_non_null(strstr(err.msg, want));
	cli_argv_free(&a);
}

static void test_conf_refuses(void **state)
{
	(void)state;
	check_conf_refused(serve_longopts, "port = 99999\n", "--port '99999': out of range");
	check_conf_refused(serve_longopts, "threads = 0\n", "--threads");
	check_conf_refused(serve_longopts, "bogus = 1\n", "t.conf:1: unknown key 'bogus'");
	check_conf_refused(serve_longopts, "help = yes\n", "unknown key 'help'");
	check_conf_refused(serve_longopts, "\n\nread-only = maybe\n", "t.conf:3");
	check_conf_refused(serve_longopts, "socket /x\n", "not 'key = value'");
	check_conf_refused(serve_longopts, "socket = /x\nport = 1\n", "-U and -p/-b");
	check_conf_refused(attach_longopts, "depth = 1\nfile = x\n", "--depth");
	check_conf_refused(attach_longopts, "ublk = yes\n", "one FILE expected");
}

static void test_conf_attach(void **state)
{
	struct attach_config cfg;
	struct cli_argv a = {0};
	struct cli_err err;
	char *argv0 = "attach";

	(void)state;
	a.argv = calloc(2, sizeof(char *));
	a.owned = calloc(2, sizeof(bool));
	a.argv[0] = argv0;
	a.argc = 1;
	assert_int_equal(cli_conf_args("nbd = yes\nqueues = 4\nfile = /srv/a.img\n"
				       "foreground = true\nread-only = 0\n",
				       "t.conf", attach_longopts, &a, &err),
			 0);
	assert_int_equal(attach_parse_args(a.argc, a.argv, &cfg, &err), CLI_RUN);
	assert_int_equal(cfg.fe, ATTACH_NBD);
	assert_int_equal(cfg.queues, 4);
	assert_true(cfg.foreground);
	assert_false(cfg.open.read_only);
	assert_string_equal(cfg.file, "/srv/a.img");
	cli_argv_free(&a);
}

/* ---- stats, --metrics ---- */

#define STATS(cfg, err, ...) stats_parse_args(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), cfg, err)

static void test_stats_config(void **state)
{
	struct stats_config cfg;
	struct cli_err err;

	(void)state;
	assert_int_equal(STATS(&cfg, &err, "stats"), CLI_RUN);
	assert_null(cfg.name);
	assert_false(cfg.json);
	assert_true(cfg.watch == 0);
	assert_int_equal(STATS(&cfg, &err, "stats", "vm1", "--json", "--control", "/x.ctl"),
			 CLI_RUN);
	assert_string_equal(cfg.name, "vm1");
	assert_true(cfg.json);
	assert_string_equal(cfg.control, "/x.ctl");
	assert_int_equal(STATS(&cfg, &err, "stats", "--watch", "0.5", "-c", "3", "/dev/ublkb0"),
			 CLI_RUN);
	assert_true(cfg.watch == 0.5);
	assert_int_equal(cfg.count, 3);
	assert_string_equal(cfg.name, "/dev/ublkb0");
	assert_int_equal(STATS(&cfg, &err, "stats", "--watch", "0"), -EINVAL);
	assert_non_null(strstr(err.msg, "--watch"));
	assert_int_equal(STATS(&cfg, &err, "stats", "--count", "2"), -EINVAL);
	assert_int_equal(STATS(&cfg, &err, "stats", "--json", "--watch", "1"), -EINVAL);
	assert_int_equal(STATS(&cfg, &err, "stats", "a", "b"), -EINVAL);
	assert_int_equal(STATS(&cfg, &err, "stats", "--help"), CLI_HELP);
}

static void test_metrics_addr(void **state)
{
	struct cli_metrics_addr a;
	struct cli_err err;
	struct serve_config cfg;

	(void)state;
	assert_int_equal(cli_metrics_parse("127.0.0.1:9100", &a, &err), 0);
	assert_false(a.is_unix);
	assert_string_equal(a.host, "127.0.0.1");
	assert_string_equal(a.port, "9100");
	assert_int_equal(cli_metrics_parse("127.1.2.3:80", &a, &err), 0);
	assert_int_equal(cli_metrics_parse("localhost:9100", &a, &err), 0);
	assert_string_equal(a.host, "127.0.0.1");
	assert_int_equal(cli_metrics_parse("[::1]:9100", &a, &err), 0);
	assert_string_equal(a.host, "::1");
	assert_int_equal(cli_metrics_parse("unix:/run/aioloop/m.sock", &a, &err), 0);
	assert_true(a.is_unix);
	assert_string_equal(a.path, "/run/aioloop/m.sock");
	/* not loopback, malformed, bad port */
	assert_int_equal(cli_metrics_parse("0.0.0.0:9100", &a, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "loopback"));
	assert_int_equal(cli_metrics_parse("[::]:9100", &a, &err), -EINVAL);
	assert_int_equal(cli_metrics_parse("192.0.2.1:9100", &a, &err), -EINVAL);
	assert_int_equal(cli_metrics_parse("example.org:9100", &a, &err), -EINVAL);
	assert_int_equal(cli_metrics_parse("9100", &a, &err), -EINVAL);
	assert_int_equal(cli_metrics_parse("127.0.0.1:99999", &a, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "--metrics"));
	assert_int_equal(cli_metrics_parse("[::1]9100", &a, &err), -EINVAL);
	assert_int_equal(cli_metrics_parse("unix:", &a, &err), -EINVAL);
	/* through serve's parser, and its config file */
	assert_int_equal(
	    SERVE(&cfg, &err, "serve", "--metrics", "[::1]:9", "--control", "none", "d.img"),
	    CLI_RUN);
	assert_true(cfg.metrics_on);
	assert_string_equal(cfg.metrics.port, "9");
	assert_string_equal(cfg.control, "none");
	assert_int_equal(SERVE(&cfg, &err, "serve", "--metrics", "10.0.0.1:9", "d.img"), -EINVAL);
	check_conf_refused(serve_longopts, "metrics = 0.0.0.0:1\n", "loopback");
	check_conf_refused(attach_longopts, "metrics = x\nfile = a\n", "--metrics 'x'");
}

/* The encryption options, the same on serve, attach and bench. */
static void test_crypt_options(void **state)
{
	struct serve_config sc;
	struct attach_config ac;
	struct bench_opts bo;
	struct cli_err err;

	(void)state;
	assert_int_equal(SERVE(&sc, &err, "serve", "f"), CLI_RUN);
	assert_null(sc.crypt.cipher);
	assert_int_equal(SERVE(&sc, &err, "serve", "--encrypt", "aes-xts-plain64", "--key-file",
			       "k", "f"),
			 CLI_RUN);
	assert_string_equal(sc.crypt.cipher, "aes-xts-plain64");
	assert_int_equal(sc.crypt.spec.mode, AIOL_CRYPT_XTS_PLAIN64);
	assert_string_equal(sc.crypt.key_file, "k");
	assert_int_equal(sc.crypt.geom.sector_size, 512);
	assert_false(sc.crypt.geom.iv_large_sectors);
	assert_int_equal(sc.crypt.geom.iv_offset, 0);
	assert_false(sc.crypt.allow_discards);

	assert_int_equal(ATTACH(&ac, &err, "attach", "--encrypt", "aes-cbc-essiv:sha256",
				"--key-file", "-", "--encrypt-sector-size", "4k",
				"--iv-large-sectors", "--iv-offset", "0x10", "--allow-discards",
				"f"),
			 CLI_RUN);
	assert_int_equal(ac.crypt.spec.mode, AIOL_CRYPT_CBC_ESSIV);
	assert_string_equal(ac.crypt.key_file, "-");
	assert_int_equal(ac.crypt.geom.sector_size, 4096);
	assert_true(ac.crypt.geom.iv_large_sectors);
	assert_int_equal(ac.crypt.geom.iv_offset, 16);
	assert_true(ac.crypt.allow_discards);

	assert_int_equal(BENCH(&bo, &err, "bench", "--encrypt", "aes-xts-plain64", "--key-file",
			       "k", "--encrypt-sector-size", "4096", "f"),
			 CLI_RUN);
	assert_int_equal(bo.crypt.geom.sector_size, 4096);
	assert_int_equal(bo.crypt.threads, -1); /* by the CPU count */
	assert_int_equal(BENCH(&bo, &err, "bench", "--encrypt", "aes-xts-plain64", "--key-file",
			       "k", "--crypt-threads", "0", "f"),
			 CLI_RUN);
	assert_int_equal(bo.crypt.threads, 0);
	assert_int_equal(BENCH(&bo, &err, "bench", "--encrypt", "aes-xts-plain64", "--key-file",
			       "k", "--crypt-threads", "3", "f"),
			 CLI_RUN);
	assert_int_equal(bo.crypt.threads, 3);
	assert_int_equal(BENCH(&bo, &err, "bench", "--encrypt", "aes-xts-plain64", "--key-file",
			       "k", "--crypt-threads", "65", "f"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "--crypt-threads '65'"));

	/* Refused, each with its reason. */
	assert_int_equal(SERVE(&sc, &err, "serve", "--encrypt", "aes-xts-plain64", "f"), -EINVAL);
	assert_non_null(strstr(err.msg, "--key-file"));
	assert_int_equal(SERVE(&sc, &err, "serve", "--encrypt", "aes-xts-plain64", "--key-file",
			       "k"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "demo image"));
	assert_int_equal(SERVE(&sc, &err, "serve", "--key-file", "k", "f"), -EINVAL);
	assert_non_null(strstr(err.msg, "need --encrypt"));
	assert_int_equal(SERVE(&sc, &err, "serve", "--iv-offset", "8", "f"), -EINVAL);
	assert_int_equal(SERVE(&sc, &err, "serve", "--encrypt", "aes-xts", "--key-file", "k", "f"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "'aes-xts'"));
	assert_int_equal(SERVE(&sc, &err, "serve", "--encrypt", "aes-xts-plain64", "--key-file",
			       "-", "--stdio", "f"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "standard input"));
	assert_int_equal(ATTACH(&ac, &err, "attach", "--encrypt", "aes-xts-plain64", "--key-file",
				"k", "--encrypt-sector-size", "1024", "f"),
			 -EINVAL);
	assert_int_equal(ATTACH(&ac, &err, "attach", "--encrypt", "aes-xts-plain64", "--key-file",
				"k", "--encrypt-sector-size", "4096", "--iv-offset", "4", "f"),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "--iv-offset 4"));
	assert_int_equal(ATTACH(&ac, &err, "attach", "--encrypt", "aes-xts-plain64", "--key-file",
				"k", "--iv-offset", "-1", "f"),
			 -EINVAL);
	assert_int_equal(ATTACH(&ac, &err, "attach", "--recover", "ublkb0", "--encrypt",
				"aes-xts-plain64", "--key-file", "k"),
			 -EINVAL);
	assert_int_equal(ATTACH(&ac, &err, "attach", "--recover", "ublkb0", "--key-file", "k"),
			 CLI_RUN);
	assert_int_equal(BENCH(&bo, &err, "bench", "--allow-discards", "f"), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uint_accepts),  cmocka_unit_test(test_uint_refuses),
	    cmocka_unit_test(test_uint32),	  cmocka_unit_test(test_block_size),
	    cmocka_unit_test(test_port),	  cmocka_unit_test(test_size_accepts),
	    cmocka_unit_test(test_size_refuses),  cmocka_unit_test(test_seconds),
	    cmocka_unit_test(test_serve_config),  cmocka_unit_test(test_serve_refuses),
	    cmocka_unit_test(test_attach_config), cmocka_unit_test(test_bench_config),
	    cmocka_unit_test(test_conf_serve),	  cmocka_unit_test(test_conf_refuses),
	    cmocka_unit_test(test_conf_attach),	  cmocka_unit_test(test_stats_config),
	    cmocka_unit_test(test_metrics_addr),
	    cmocka_unit_test(test_crypt_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
