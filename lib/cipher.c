// SPDX-License-Identifier: MIT
/*
 * Sector ciphers (cipher.h) on GnuTLS, chosen over OpenSSL's EVP by
 * measurement (docs/ARCHITECTURE.md, bench/cipher-speed.c): resetting the
 * tweak for every sector costs less through gnutls_cipher_set_iv() than
 * through EVP_CipherInit_ex().
 *
 * aes-xts-plain64: AES-XTS (a 32-byte key is AES-128-XTS, a 64-byte one
 * AES-256-XTS), the tweak being the sector's IV number as 64 bits little
 * endian, zero-padded to 16 bytes.  aes-cbc-essiv:sha256: AES-CBC with the
 * key, the IV being that same block encrypted by AES-256 with the SHA-256
 * of the key (one block of CBC from a zero IV is the block cipher itself).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aioloop/log.h"
#include "cipher.h"

#ifdef AIOLOOP_HAVE_GNUTLS

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

struct cipher {
	enum aiol_crypt_mode mode;
	struct aiol_crypt_geom geom;
	gnutls_cipher_hd_t data;  /* the data cipher */
	gnutls_cipher_hd_t essiv; /* ESSIV: AES-256 with the key's hash */
	uint8_t zero[4096];	  /* encrypting zeroes: a sector of them */
};

static gnutls_cipher_algorithm_t data_alg(enum aiol_crypt_mode mode, size_t klen)
{
	if (mode == AIOL_CRYPT_XTS_PLAIN64)
		return klen == 32 ? GNUTLS_CIPHER_AES_128_XTS : GNUTLS_CIPHER_AES_256_XTS;
	switch (klen) {
	case 16:
		return GNUTLS_CIPHER_AES_128_CBC;
	case 24:
		return GNUTLS_CIPHER_AES_192_CBC;
	default:
		return GNUTLS_CIPHER_AES_256_CBC;
	}
}

int cipher_create(const struct aiol_crypt_spec *spec, const struct aiol_crypt_key *key,
		  const struct aiol_crypt_geom *geom, struct cipher **out)
{
	size_t klen = aiol_crypt_key_len(key);
	gnutls_datum_t k = {(unsigned char *)aiol_crypt_key_bytes(key), (unsigned int)klen};
	uint8_t h[32];
	struct cipher *c;
	int ret;

	*out = NULL;
	if (!aiol_crypt_key_len_ok(spec, klen) || aiol_crypt_geom_check(geom) < 0)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->mode = spec->mode;
	c->geom = *geom;
	ret = gnutls_cipher_init(&c->data, data_alg(spec->mode, klen), &k, NULL);
	if (ret < 0) {
		aiol_err("%s: the cipher library refuses the key: %s", spec->name,
			 gnutls_strerror(ret));
		goto err;
	}
	if (spec->mode == AIOL_CRYPT_CBC_ESSIV) {
		gnutls_datum_t hk = {h, sizeof(h)};

		ret = gnutls_hash_fast(GNUTLS_DIG_SHA256, k.data, klen, h);
		if (ret >= 0)
			ret = gnutls_cipher_init(&c->essiv, GNUTLS_CIPHER_AES_256_CBC, &hk, NULL);
		explicit_bzero(h, sizeof(h));
		if (ret < 0) {
			aiol_err("%s: cannot set up ESSIV: %s", spec->name, gnutls_strerror(ret));
			goto err;
		}
	}
	*out = c;
	return 0;
err:
	cipher_destroy(c);
	return -EINVAL;
}

void cipher_destroy(struct cipher *c)
{
	if (!c)
		return;
	if (c->data)
		gnutls_cipher_deinit(c->data);
	if (c->essiv)
		gnutls_cipher_deinit(c->essiv);
	free(c);
}

/* Set the IV of the sector at byte off. */
static int set_iv(struct cipher *c, uint64_t off)
{
	uint64_t s = aiol_crypt_iv_sector(&c->geom, off);
	uint8_t iv[16] = {0};
	static const uint8_t zero_iv[16];

	for (int i = 0; i < 8; i++)
		iv[i] = (uint8_t)(s >> (8 * i));
	if (c->mode == AIOL_CRYPT_CBC_ESSIV) {
		/* One CBC block from a zero IV: AES-256(hash, iv). */
		gnutls_cipher_set_iv(c->essiv, (void *)zero_iv, sizeof(zero_iv));
		if (gnutls_cipher_encrypt(c->essiv, iv, sizeof(iv)) < 0)
			return -EIO;
	}
	gnutls_cipher_set_iv(c->data, iv, sizeof(iv));
	return 0;
}

int cipher_encrypt(struct cipher *c, uint64_t off, const void *src, void *dst, size_t len)
{
	size_t ss = c->geom.sector_size;

	for (size_t pos = 0; pos < len; pos += ss) {
		const void *in = src ? (const uint8_t *)src + pos : c->zero;
		int ret;

		if (set_iv(c, off + pos) < 0)
			return -EIO;
		if (in == (uint8_t *)dst + pos)
			ret = gnutls_cipher_encrypt(c->data, (uint8_t *)dst + pos, ss);
		else
			ret = gnutls_cipher_encrypt2(c->data, in, ss, (uint8_t *)dst + pos, ss);
		if (ret < 0)
			return -EIO;
	}
	return 0;
}

int cipher_decrypt(struct cipher *c, uint64_t off, void *buf, size_t len)
{
	size_t ss = c->geom.sector_size;

	for (size_t pos = 0; pos < len; pos += ss) {
		if (set_iv(c, off + pos) < 0)
			return -EIO;
		if (gnutls_cipher_decrypt(c->data, (uint8_t *)buf + pos, ss) < 0)
			return -EIO;
	}
	return 0;
}

#else /* !AIOLOOP_HAVE_GNUTLS */

int cipher_create(const struct aiol_crypt_spec *spec, const struct aiol_crypt_key *key,
		  const struct aiol_crypt_geom *geom, struct cipher **out)
{
	(void)key;
	(void)geom;
	*out = NULL;
	aiol_err("%s: this aioloop was built without GnuTLS, which does its ciphers", spec->name);
	return -ENOTSUP;
}

void cipher_destroy(struct cipher *c)
{
	(void)c;
}

int cipher_encrypt(struct cipher *c, uint64_t off, const void *src, void *dst, size_t len)
{
	(void)c;
	(void)off;
	(void)src;
	(void)dst;
	(void)len;
	return -ENOTSUP;
}

int cipher_decrypt(struct cipher *c, uint64_t off, void *buf, size_t len)
{
	(void)c;
	(void)off;
	(void)buf;
	(void)len;
	return -ENOTSUP;
}

#endif
