// SPDX-License-Identifier: MIT
/* aioloop serve: not built yet. */
#include <stdio.h>

#include "cli.h"

int cmd_serve(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "aioloop: 'serve' is not available in this build\n");
	return 1;
}
