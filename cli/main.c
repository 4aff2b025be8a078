// SPDX-License-Identifier: MIT
/*
 * aioloop: the program's entry point.  Dispatches to one file per
 * subcommand (serve.c, bench.c, attach.c) and holds the small parsers they
 * share.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aioloop/log.h"
#include "cli.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
	{ "serve", cmd_serve, "serve a file (or block device) over NBD" },
	{ "attach", cmd_attach, "attach a file as a kernel block device (ublk or NBD)" },
	{ "detach", cmd_detach, "detach a device attached by aioloop" },
	{ "list", cmd_list, "list devices attached by aioloop" },
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
	aiol_log_setup("aioloop", AIOL_LOG_INFO, NULL);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("aioloop 0.1.0\n");
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "aioloop: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno)
		return -ERANGE;
	if (end == s)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	case 'b': case 'B': end++; break;
	default:
		return -EINVAL;
	}
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (shift && (*end == 'b' || *end == 'B'))
		end++;
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

int cli_parse_direct(const char *s, enum aiol_direct *out)
{
	if (!strcmp(s, "auto"))
		*out = AIOL_DIRECT_AUTO;
	else if (!strcmp(s, "on") || !strcmp(s, "1") || !strcmp(s, "yes"))
		*out = AIOL_DIRECT_ON;
	else if (!strcmp(s, "off") || !strcmp(s, "0") || !strcmp(s, "no"))
		*out = AIOL_DIRECT_OFF;
	else
		return -EINVAL;
	return 0;
}

unsigned int cli_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (unsigned int)n : 1;
}

void cli_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}
