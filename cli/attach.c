// SPDX-License-Identifier: MIT
/* aioloop attach: not built yet. */
#include <stdio.h>

#include "cli.h"

int cmd_attach(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "aioloop: 'attach' is not available in this build\n");
	return 1;
}

int cmd_detach(int argc, char **argv)
{
	return cmd_attach(argc, argv);
}

int cmd_list(int argc, char **argv)
{
	return cmd_attach(argc, argv);
}
