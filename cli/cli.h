/* SPDX-License-Identifier: MIT */
/*
 * Subcommands of the aioloop program and the helpers they share: size
 * parsing and the options every command that opens a backing file takes.
 */
#ifndef AIOLOOP_CLI_H
#define AIOLOOP_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "aioloop/engine.h"

/* Exit codes, like losetup/qemu-nbd: 0 ok, 1 failure, 2 usage error. */
#define EXIT_USAGE 2

int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_detach(int argc, char **argv);
int cmd_list(int argc, char **argv);

/* Parse a byte count with an optional K/M/G/T (binary) suffix, "512", "4k",
 * "1G".  Returns 0 or -EINVAL / -ERANGE. */
int cli_parse_size(const char *s, uint64_t *out);
/* Parse "auto|on|off". */
int cli_parse_direct(const char *s, enum aiol_direct *out);
/* Number of online CPUs, at least 1. */
unsigned int cli_ncpus(void);
/* Write s to f as a JSON string (quoted, escaped). */
void cli_json_string(FILE *f, const char *s);

#endif
