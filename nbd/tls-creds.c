// SPDX-License-Identifier: MIT
/*
 * TLS credentials of the NBD server (tls.h), loaded once at startup:
 * X.509 from --tls-certificates DIR (ca-cert.pem, server-cert.pem,
 * server-key.pem, optional ca-crl.pem: the layout of nbdkit and qemu) or
 * PSK from --tls-psk FILE (psktool's "identity:hexkey" lines), and the
 * priority string.  Control path, blocking file reads; afterwards shared
 * read-only by all threads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "aioloop/log.h"
#include "tls-session.h"

#define PRIO_X509 "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define PRIO_PSK PRIO_X509 ":+ECDHE-PSK:+DHE-PSK:+PSK"

bool nbd_tls_available(void)
{
	return true;
}

static int dir_file(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* A psktool file: lines "identity:hexkey".  Checked here so that a bad file
 * fails at startup, not at each handshake (GnuTLS reads it lazily). */
static int psk_file_check(const char *path)
{
	FILE *f = fopen(path, "re");
	char line[1024];
	int n = 0, ret = 0;

	if (!f) {
		ret = -errno;
		aiol_err("--tls-psk %s: %m", path);
		return ret;
	}
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		size_t hex;

		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		hex = colon ? strlen(colon + 1) : 0;
		if (!colon || colon == line || hex == 0 || hex % 2 ||
		    strspn(colon + 1, "0123456789abcdefABCDEF") != hex) {
			aiol_err("--tls-psk %s: line %d is not 'identity:hexkey'", path, n + 1);
			ret = -EINVAL;
			goto out;
		}
		n++;
	}
	if (!n) {
		aiol_err("--tls-psk %s: no keys", path);
		ret = -EINVAL;
	}
out:
	fclose(f);
	return ret;
}

static int load_x509(struct nbd_tls_creds *c, const char *dir, bool verify_peer)
{
	char path[4096];
	int ret;

	ret = gnutls_certificate_allocate_credentials(&c->x509);
	if (ret < 0)
		goto gnutls_fail;
	if (dir_file(path, sizeof(path), dir, "ca-cert.pem") < 0)
		return -ENAMETOOLONG;
	if (access(path, R_OK) == 0) {
		ret = gnutls_certificate_set_x509_trust_file(c->x509, path, GNUTLS_X509_FMT_PEM);
		if (ret < 0) {
			aiol_err("%s: %s", path, gnutls_strerror(ret));
			return -EINVAL;
		}
		if (dir_file(path, sizeof(path), dir, "ca-crl.pem") == 0 &&
		    access(path, R_OK) == 0) {
			ret = gnutls_certificate_set_x509_crl_file(c->x509, path,
								   GNUTLS_X509_FMT_PEM);
			if (ret < 0) {
				aiol_err("%s: %s", path, gnutls_strerror(ret));
				return -EINVAL;
			}
		}
	} else if (verify_peer) {
		aiol_err("--tls-verify-peer needs %s: %m", path);
		return -ENOENT;
	}

	{
		char key[4096];

		if (dir_file(path, sizeof(path), dir, "server-cert.pem") < 0 ||
		    dir_file(key, sizeof(key), dir, "server-key.pem") < 0)
			return -ENAMETOOLONG;
		if (access(path, R_OK) < 0 || access(key, R_OK) < 0) {
			ret = -errno;
			aiol_err("--tls-certificates %s: cannot read server-cert.pem and "
				 "server-key.pem: %m",
				 dir);
			return ret;
		}
		ret = gnutls_certificate_set_x509_key_file(c->x509, path, key, GNUTLS_X509_FMT_PEM);
		if (ret < 0) {
			aiol_err("%s, %s: %s", path, key, gnutls_strerror(ret));
			return -EINVAL;
		}
	}
	gnutls_certificate_set_known_dh_params(c->x509, GNUTLS_SEC_PARAM_MEDIUM);
	return 0;

gnutls_fail:
	aiol_err("gnutls: %s", gnutls_strerror(ret));
	return -ENOMEM;
}

int nbd_tls_creds_load(const struct nbd_tls_opts *opts, struct nbd_tls_creds **out)
{
	struct nbd_tls_creds *c;
	const char *prio;
	const char *errpos = NULL;
	int ret;

	*out = NULL;
	if (opts->mode == NBD_TLS_OFF)
		return 0;
	if (!!opts->cert_dir == !!opts->psk_file) {
		aiol_err("--tls=%s needs either --tls-certificates DIR or --tls-psk FILE",
			 opts->mode == NBD_TLS_REQUIRE ? "require" : "on");
		return -EINVAL;
	}
	if (opts->verify_peer && !opts->cert_dir) {
		aiol_err("--tls-verify-peer needs --tls-certificates (with ca-cert.pem)");
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->mode = opts->mode;
	c->verify_peer = opts->verify_peer;
	if (opts->cert_dir) {
		ret = load_x509(c, opts->cert_dir, opts->verify_peer);
		if (ret < 0)
			goto err;
	} else {
		ret = psk_file_check(opts->psk_file);
		if (ret < 0)
			goto err;
		ret = gnutls_psk_allocate_server_credentials(&c->psk);
		if (ret == 0)
			ret = gnutls_psk_set_server_credentials_file(c->psk, opts->psk_file);
		if (ret < 0) {
			aiol_err("--tls-psk %s: %s", opts->psk_file, gnutls_strerror(ret));
			ret = -EINVAL;
			goto err;
		}
		gnutls_psk_set_server_known_dh_params(c->psk, GNUTLS_SEC_PARAM_MEDIUM);
	}
	prio = opts->priority ? opts->priority : opts->psk_file ? PRIO_PSK : PRIO_X509;
	ret = gnutls_priority_init(&c->prio, prio, &errpos);
	if (ret < 0) {
		aiol_err("TLS priority '%s' (at '%s'): %s", prio, errpos ? errpos : "",
			 gnutls_strerror(ret));
		ret = -EINVAL;
		goto err;
	}
	*out = c;
	return 0;

err:
	nbd_tls_creds_free(c);
	return ret;
}

void nbd_tls_creds_free(struct nbd_tls_creds *c)
{
	if (!c)
		return;
	if (c->prio)
		gnutls_priority_deinit(c->prio);
	if (c->x509)
		gnutls_certificate_free_credentials(c->x509);
	if (c->psk)
		gnutls_psk_free_server_credentials(c->psk);
	free(c);
}

enum nbd_tls_mode nbd_tls_creds_mode(const struct nbd_tls_creds *c)
{
	return c ? c->mode : NBD_TLS_OFF;
}
