// SPDX-License-Identifier: MIT
/*
 * The encryption options that serve, attach and bench share (--encrypt,
 * --key-file, --encrypt-sector-size, --iv-large-sectors, --iv-offset,
 * --allow-discards): parsed purely into a struct cli_crypt, checked once
 * all are seen, and turned into the engine's struct aiol_crypt_opts by
 * reading the key (the only step with I/O).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_crypt_opt(struct cli_crypt *c, int opt, const char *arg, struct cli_err *err)
{
	uint64_t v;

	switch (opt) {
	case CLI_OPT_ENCRYPT:
		if (aiol_crypt_spec_parse(arg, &c->spec) < 0) {
			snprintf(
			    err->msg, sizeof(err->msg),
			    "--encrypt '%s': unknown (aes-xts-plain64 or aes-cbc-essiv:sha256)",
			    arg);
			return -EINVAL;
		}
		c->cipher = arg;
		return 1;
	case CLI_OPT_KEY_FILE:
		c->key_file = arg;
		break;
	case CLI_OPT_ENC_SECTOR:
		if (cli_parse_block_size("--encrypt-sector-size", arg, &c->geom.sector_size, err) <
		    0)
			return -EINVAL;
		break;
	case CLI_OPT_IV_LARGE:
		c->geom.iv_large_sectors = true;
		break;
	case CLI_OPT_IV_OFFSET:
		if (cli_parse_uint("--iv-offset", arg, 0, INT64_MAX >> 9, &v, err) < 0)
			return -EINVAL;
		c->geom.iv_offset = v;
		break;
	case CLI_OPT_ALLOW_DISCARDS:
		c->allow_discards = true;
		break;
	case CLI_OPT_CRYPT_THREADS:
		if (cli_parse_uint("--crypt-threads", arg, 0, 64, &v, err) < 0)
			return -EINVAL;
		c->threads = (int)v + 1; /* 0 until finish: not given */
		break;
	default:
		return 0;
	}
	c->other = true;
	return 1;
}

int cli_crypt_finish(struct cli_crypt *c, struct cli_err *err)
{
	/* --crypt-threads N was kept as N + 1, so that 0 means "not given". */
	c->threads = c->threads ? c->threads - 1 : -1;
	if (!c->cipher) {
		if (c->other) {
			snprintf(
			    err->msg, sizeof(err->msg),
			    "--key-file, --encrypt-sector-size, --iv-large-sectors, "
			    "--iv-offset, --allow-discards and --crypt-threads need --encrypt");
			return -EINVAL;
		}
		return 0;
	}
	if (!c->key_file) {
		snprintf(err->msg, sizeof(err->msg), "--encrypt needs --key-file FILE (or '-')");
		return -EINVAL;
	}
	if (!c->geom.sector_size)
		c->geom.sector_size = 512;
	if (aiol_crypt_geom_check(&c->geom) < 0) {
		snprintf(err->msg, sizeof(err->msg),
			 "--iv-offset %llu: not a whole number of %u-byte encryption sectors "
			 "(it counts 512-byte sectors)",
			 (unsigned long long)c->geom.iv_offset, c->geom.sector_size);
		return -EINVAL;
	}
	return 0;
}

int cli_crypt_load(const struct cli_crypt *c, struct aiol_crypt_opts *o,
		   struct aiol_crypt_key **key)
{
	int ret;

	*key = NULL;
	if (!c->cipher)
		return 0;
	ret = aiol_crypt_key_read(c->key_file, &c->spec, key);
	if (ret < 0)
		return ret; /* it said why */
	*o = (struct aiol_crypt_opts){
	    .spec = c->spec,
	    .key = *key,
	    .geom = c->geom,
	    .allow_discards = c->allow_discards,
	    .threads = (unsigned int)c->threads,
	};
	if (c->threads < 0) {
		/* The loop threads have the rest of the CPUs. */
		o->threads = cli_ncpus() - 1;
		if (o->threads > 4)
			o->threads = 4;
	}
	return 0;
}
