// SPDX-License-Identifier: MIT
/* aioloop bench: not built yet. */
#include <stdio.h>

#include "cli.h"

int cmd_bench(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "aioloop: 'bench' is not available in this build\n");
	return 1;
}
