/* SPDX-License-Identifier: MIT */
/*
 * Sector ciphers for the encryption stage: a struct cipher encrypts and
 * decrypts whole encryption sectors of the data with their dm-crypt plain
 * IVs (aioloop/crypt.h), through GnuTLS.  Pure transformations of buffers:
 * no I/O, no logging on the data path.
 *
 * Thread model: a struct cipher holds the library's keyed contexts and is
 * used by one thread at a time (the stage makes one per store queue).
 */
#ifndef AIOLOOP_CIPHER_H
#define AIOLOOP_CIPHER_H

#include <stddef.h>
#include <stdint.h>

#include "aioloop/crypt.h"

struct cipher;

/* Key the cipher of spec with key; geom says the sector size and IVs.
 * Returns 0, -EINVAL (a key the library refuses), -ENOTSUP (built without
 * GnuTLS) or -ENOMEM; logged. */
int cipher_create(const struct aiol_crypt_spec *spec, const struct aiol_crypt_key *key,
		  const struct aiol_crypt_geom *geom, struct cipher **out);
void cipher_destroy(struct cipher *c);

/* Encrypt len bytes (whole sectors) at byte off of the data (a multiple of
 * the sector size) from src (NULL: zeroes) into dst (src == dst: in
 * place).  Returns 0 or -EIO (the library failed). */
int cipher_encrypt(struct cipher *c, uint64_t off, const void *src, void *dst, size_t len);
/* Decrypt len bytes (whole sectors) at byte off in place. */
int cipher_decrypt(struct cipher *c, uint64_t off, void *buf, size_t len);

#endif
