// SPDX-License-Identifier: MIT
/*
 * aioloop: the program's entry point.  Dispatches to one file per
 * subcommand (serve.c, bench.c, attach.c); the helpers they share are in
 * args.c (the command line's numbers) and util.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "cli.h"
#include "version.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
	{ "serve", cmd_serve, "serve a file (or block device) over NBD" },
	{ "attach", cmd_attach, "attach a file as a kernel block device (ublk or NBD)" },
	{ "detach", cmd_detach, "detach a device attached by aioloop" },
	{ "list", cmd_list, "list devices attached by aioloop, and running servers" },
	{ "stats", cmd_stats, "request statistics of running servers and devices" },
	{ "resize", cmd_resize, "tell the kernel a device's new size (ublk, Linux 6.16+)" },
	{ "upgrade", cmd_upgrade, "hand a ublk device to a new daemon without failing I/O" },
	{ "bench", cmd_bench, "benchmark the engine on a file" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: aioloop COMMAND [OPTIONS] [FILE]\n\n"
		   "A userspace loop block device: concurrent asynchronous direct I/O\n"
		   "on a backing file, served over NBD or as a kernel block device.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\nRun 'aioloop COMMAND --help' for the options of a command.\n"
		   "See aioloop(8) for the full manual.\n");
}

int main(int argc, char **argv)
{
	cli_log_setup(AIOL_LOG_INFO);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("aioloop %s\n", AIOLOOP_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "aioloop: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
