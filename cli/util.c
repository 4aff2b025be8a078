// SPDX-License-Identifier: MIT
/*
 * Small helpers the subcommands share: the --direct keyword, the CPU
 * count, and the one JSON string writer (list --json, bench --json).
 * The numbers of the command line are parsed in args.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

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
