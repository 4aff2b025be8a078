/* SPDX-License-Identifier: MIT */
/*
 * Subcommands of the aioloop program and the helpers they share.  Each
 * subcommand parses its command line into a config struct with a pure
 * function (no I/O: a usage error comes back in a struct cli_err, which the
 * command prints), so that unit tests check what a command line means.
 */
#ifndef AIOLOOP_CLI_H
#define AIOLOOP_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "aioloop/crypt.h"
#include "aioloop/engine.h"
#include "args.h"
#include "nbd/server.h"
#include "nbd/tls.h"

/* Exit codes, like losetup/qemu-nbd: 0 ok, 1 failure, 2 usage error. */
#define EXIT_USAGE 2

int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_detach(int argc, char **argv);
int cmd_list(int argc, char **argv);

/* What a parse function found besides a config to run: help or version
 * asked.  A usage error is a negative errno with cli_err filled. */
enum cli_parsed {
	CLI_RUN = 0,
	CLI_HELP,
	CLI_VERSION,
};

/* ---- encryption (serve, attach, bench) ---- */

/* Option codes of the encryption options, above every subcommand's own. */
enum {
	CLI_OPT_ENCRYPT = 0x1000,
	CLI_OPT_KEY_FILE,
	CLI_OPT_ENC_SECTOR,
	CLI_OPT_IV_LARGE,
	CLI_OPT_IV_OFFSET,
	CLI_OPT_ALLOW_DISCARDS,
	CLI_OPT_CRYPT_THREADS,
	CLI_OPT_CRYPT_LAST = CLI_OPT_CRYPT_THREADS,
};

/* Entries of a getopt_long table. */
#define CLI_CRYPT_LONGOPTS                                                                         \
	{"encrypt", required_argument, NULL, CLI_OPT_ENCRYPT},                                     \
	    {"key-file", required_argument, NULL, CLI_OPT_KEY_FILE},                               \
	    {"encrypt-sector-size", required_argument, NULL, CLI_OPT_ENC_SECTOR},                  \
	    {"iv-large-sectors", no_argument, NULL, CLI_OPT_IV_LARGE},                             \
	    {"iv-offset", required_argument, NULL, CLI_OPT_IV_OFFSET},                             \
	    {"allow-discards", no_argument, NULL, CLI_OPT_ALLOW_DISCARDS},                         \
	{                                                                                          \
		"crypt-threads", required_argument, NULL, CLI_OPT_CRYPT_THREADS                    \
	}

#define CLI_CRYPT_USAGE                                                                            \
	"      --encrypt CIPHER     keep FILE encrypted as dm-crypt plain does: aes-xts-plain64\n" \
	"                           (key of 32 or 64 bytes) or aes-cbc-essiv:sha256\n"             \
	"      --key-file FILE      the key, exactly its length in bytes ('-': standard input)\n"  \
	"      --encrypt-sector-size N   512 (default) or 4096 bytes per encryption sector\n"      \
	"      --iv-large-sectors   IVs count encryption sectors, not 512-byte ones\n"             \
	"      --iv-offset N        add N 512-byte sectors to every IV (cryptsetup --skip)\n"      \
	"      --allow-discards     pass discards down (shows which blocks are free)\n"            \
	"      --crypt-threads N    threads for requests of 64 KiB or more (default: CPUs - 1,\n"  \
	"                           at most 4; 0: all on the event loop threads)\n"

/* What the encryption options said. */
struct cli_crypt {
	const char *cipher; /* --encrypt; NULL: no encryption */
	struct aiol_crypt_spec spec;
	const char *key_file;
	struct aiol_crypt_geom geom; /* sector_size 0 until cli_crypt_finish(): 512 */
	bool allow_discards;
	int threads; /* --crypt-threads; -1: by the CPU count */
	bool other;  /* an option other than --encrypt was given */
};

/* Take option opt (a CLI_OPT_* code) with its argument.  Returns 1 when it
 * was one, 0 when it is not an encryption option, -EINVAL (err filled). */
int cli_crypt_opt(struct cli_crypt *c, int opt, const char *arg, struct cli_err *err);
/* After the last option: a cipher needs a key file, the other options a
 * cipher, the IV offset whole sectors.  Returns 0 or -EINVAL (err filled). */
int cli_crypt_finish(struct cli_crypt *c, struct cli_err *err);
/* Read the key (the only I/O) and fill *o, whose key is *key (free it with
 * aiol_crypt_key_free() once the devs are open).  Nothing without
 * --encrypt.  Returns 0 or -errno (logged). */
int cli_crypt_load(const struct cli_crypt *c, struct aiol_crypt_opts *o,
		   struct aiol_crypt_key **key);

/* ---- serve ---- */

#define SERVE_MAX_EXPORTS 64

struct serve_export {
	const char *name;
	char *file; /* NULL: the demo image (the default export only) */
	bool ro;
	uint64_t offset, sizelimit;
};

struct serve_config {
	/* ex[0] is FILE's (the default export), then the --export ones. */
	struct serve_export ex[SERVE_MAX_EXPORTS];
	unsigned int nex;
	struct aiol_open_opts open;    /* engine, direct, block size */
	struct nbd_server_opts server; /* tls stays NULL: loaded later */
	struct nbd_tls_opts tls;
	const char *sock, *addr, *desc, *pidfile;
	const char *port; /* canonical decimal, in port_buf; NULL: default */
	char port_buf[8];
	bool stdio, ro, daemonize;
	int verbose;
	struct cli_crypt crypt; /* every export */
};

/* Parse serve's command line (argv[0] is "serve") into *cfg.  Strings of
 * argv are referenced, and those of --export cut up in place.  Returns
 * CLI_RUN, CLI_HELP, CLI_VERSION or -EINVAL (err filled). */
int serve_parse_args(int argc, char **argv, struct serve_config *cfg, struct cli_err *err);
/* Parse "auto|on|off". */
int cli_parse_direct(const char *s, enum aiol_direct *out);
/* Number of online CPUs, at least 1. */
unsigned int cli_ncpus(void);
/* Write s to f as a JSON string (quoted, escaped). */
void cli_json_string(FILE *f, const char *s);

/* ---- attach ---- */

enum attach_frontend { ATTACH_AUTO, ATTACH_UBLK, ATTACH_NBD };

#define ATTACH_MAX_QUEUES 64
#define ATTACH_MAX_DEPTH 4096 /* UBLK_MAX_QUEUE_DEPTH */

struct attach_config {
	struct aiol_open_opts open; /* offset, size limit, block size, direct, engine */
	enum attach_frontend fe;
	unsigned int queues, depth;
	char direct_opt[8];  /* --direct as given, kept in the state file */
	const char *file;    /* FILE; NULL with --recover */
	const char *recover; /* --recover DEVICE */
	bool foreground, verbose;
	struct cli_crypt crypt;
};

/* Parse attach's command line (argv[0] is "attach") into *cfg.  Returns
 * CLI_RUN, CLI_HELP or -EINVAL (err filled). */
int attach_parse_args(int argc, char **argv, struct attach_config *cfg, struct cli_err *err);

/* ---- bench ---- */

enum bench_rw { RW_RANDREAD, RW_RANDWRITE, RW_READ, RW_WRITE };

struct bench_opts {
	enum aiol_engine engine;
	enum bench_rw rw;
	uint64_t bs;
	unsigned int qd;
	double seconds;
	uint64_t size; /* 0: whole file (or the demo default) */
	enum aiol_direct direct;
	unsigned int threads;
	unsigned int submit_batch; /* aiol_loop_opts.submit_batch */
	bool json;
	const char *file; /* NULL: demo image */
	struct cli_crypt crypt;
};

/* Parse bench's command line (argv[0] is "bench") into *o.  Returns
 * CLI_RUN, CLI_HELP or -EINVAL (err filled). */
int bench_parse_args(int argc, char **argv, struct bench_opts *o, struct cli_err *err);

#endif
