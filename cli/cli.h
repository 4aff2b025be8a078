/* SPDX-License-Identifier: MIT */
/*
 * Subcommands of the aioloop program and the helpers they share.  Each
 * subcommand parses its command line into a config struct with a pure
 * function (no I/O: a usage error comes back in a struct cli_err, which the
 * command prints), so that unit tests check what a command line means.
 */
#ifndef AIOLOOP_CLI_H
#define AIOLOOP_CLI_H

#include <getopt.h>
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
int cmd_resize(int argc, char **argv);
int cmd_upgrade(int argc, char **argv);

/* What a parse function found besides a config to run: help or version
 * asked.  A usage error is a negative errno with cli_err filled. */
enum cli_parsed {
	CLI_RUN = 0,
	CLI_HELP,
	CLI_VERSION,
};

/* ---- configuration files (conf.c) ---- */

/* An argument vector built from a file and a command line; argv is
 * NULL-terminated, owned[i] says whether argv[i] is to be freed. */
struct cli_argv {
	int argc;
	char **argv;
	bool *owned;
};

void cli_argv_free(struct cli_argv *av);

/* Turn a configuration file's text into command-line arguments appended to
 * *av: "key = value" lines, key a long option of opts ("--key=value"; an
 * option without argument takes yes/no), "file" the positional FILE (put
 * last), '#' or ';' comments, blank lines.  path names the file in
 * messages.  Pure.  Returns 0, -EINVAL (err names the file and line) or
 * -ENOMEM. */
int cli_conf_args(const char *text, const char *path, const struct option *opts,
		  struct cli_argv *av, struct cli_err *err);

/* argv with its "--config FILE" (or --config=FILE) replaced by the file's
 * options, the other arguments after them (so they win).  Reads the file.
 * Returns 0 (*av to free with cli_argv_free) or -errno with err filled. */
int cli_config_expand(int argc, char **argv, const struct option *opts, struct cli_argv *av,
		      struct cli_err *err);

/* The long options of serve and attach (the keys of their config files). */
extern const struct option serve_longopts[];
extern const struct option attach_longopts[];

/* ---- under systemd (service.c) ---- */

/* Whether stderr is the journal's stream (JOURNAL_STREAM). */
bool cli_stderr_is_journal(void);
/* aiol_log_setup for the program: syslog priority prefixes ("<3>") when
 * stderr is the journal. */
void cli_log_setup(int level);
/* sd_notify(0, "READY=1\nSTATUS=...") with printf formatting; nothing
 * outside a Type=notify unit or without libsystemd. */
void cli_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- statistics: control socket (control.c), metrics (metrics.c) ---- */

#include "stats/stats.h"

#define CLI_RUN_DIR "/run/aioloop"

/* What a process serves, for its control socket and metrics endpoint. */
struct cli_stats_src {
	struct stats_export *sx;
	const char *name, *kind, *path, *device;
};

/* Read n sources into *out (malloc'd; cli_stats_free).  mark: the reading
 * becomes their "last read".  Returns 0 or -ENOMEM. */
int cli_stats_read(const struct cli_stats_src *src, unsigned int n, bool mark,
		   struct stats_snap **out);
void cli_stats_free(struct stats_snap *s, unsigned int n);

struct cli_ctl;
/* Listen on the Unix socket path (mode 0600; a stale socket replaced) and
 * answer from a thread of its own.  src must outlive it.  Returns 0 or
 * -errno. */
int cli_ctl_start(const char *path, const struct cli_stats_src *src, unsigned int n,
		  struct cli_ctl **out);
/* Stop the thread, remove the socket.  NULL is fine. */
void cli_ctl_stop(struct cli_ctl *c);
/* CLI_RUN_DIR/NAME.ctl into buf, creating the directory.  0 or -errno. */
int cli_ctl_default_path(const char *name, char *buf, size_t len);

/* --metrics ADDR: "HOST:PORT" with HOST a loopback address ("127.0.0.1",
 * "[::1]", "localhost"), or "unix:PATH". */
struct cli_metrics_addr {
	bool is_unix;
	char host[64]; /* numeric, without brackets */
	char port[8];
	char path[108];
};

/* Parse ADDR (pure).  Returns 0 or -EINVAL with err filled: not loopback,
 * no port, a path too long. */
int cli_metrics_parse(const char *s, struct cli_metrics_addr *a, struct cli_err *err);

struct cli_metrics;
/* Serve GET /metrics (Prometheus text, or OpenMetrics when the client's
 * Accept asks for it) at a through libmicrohttpd, from its own thread.
 * Returns 0 or -errno (-ENOTSUP: built without libmicrohttpd). */
int cli_metrics_start(const struct cli_metrics_addr *a, const struct cli_stats_src *src,
		      unsigned int n, struct cli_metrics **out);
void cli_metrics_stop(struct cli_metrics *m);

int cmd_stats(int argc, char **argv);

/* One process's statistics, as its control socket dumped them. */
struct cli_proc_stats {
	char ctl[108]; /* the socket */
	long pid;
	int n;
	struct stats_snap *s;
};

/* Dumps of the control socket control (NULL: every CLI_RUN_DIR/ *.ctl that
 * answers), keeping the exports or devices that match name (NULL: all).
 * Returns the number of processes (*out: cli_stats_free_all) or -errno. */
int cli_stats_fetch_all(const char *control, const char *name, struct cli_proc_stats **out);
void cli_stats_free_all(struct cli_proc_stats *ps, int n);

struct stats_config {
	const char *name;    /* NAME or DEV; NULL: all */
	const char *control; /* one control socket; NULL: every one in CLI_RUN_DIR */
	double watch;	     /* seconds; 0: one reading */
	unsigned int count;  /* --watch reports; 0: until interrupted */
	bool json;
};

/* Parse stats' command line (argv[0] is "stats").  Returns CLI_RUN,
 * CLI_HELP or -EINVAL (err filled). */
int stats_parse_args(int argc, char **argv, struct stats_config *cfg, struct cli_err *err);

/* Start the control socket (path; NULL: CLI_RUN_DIR/default_name.ctl, and
 * no complaint if that directory is not ours to write) and the metrics
 * endpoint (ma, if any) for n sources.  Returns 0 or -errno (logged). */
int cli_observe_start(const char *path, const char *default_name, const struct cli_metrics_addr *ma,
		      const struct cli_stats_src *src, unsigned int n, struct cli_ctl **ctl,
		      struct cli_metrics **metrics);

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
	const char *control; /* control socket; NULL: the default; "" or "none": none */
	struct cli_metrics_addr metrics;
	bool metrics_on;
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
	const char *control; /* control socket; NULL: CLI_RUN_DIR/DEV.ctl; "none" */
	struct cli_metrics_addr metrics;
	bool metrics_on;
	int data_path;	 /* enum ublk_data_path: --data-path */
	int recovery;	 /* enum ublk_recovery: --recovery */
	int poll_us;	 /* --poll: 0 default, < 0 never */
	int nbd_timeout; /* --timeout: seconds, -1 if not given */
	int partscan;	 /* -P: 1, --no-partscan: 0, neither: -1 (the kernel's way) */
	bool nooverlap;	 /* -L */
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
