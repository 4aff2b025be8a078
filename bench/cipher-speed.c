// SPDX-License-Identifier: MIT
/*
 * AES-XTS as the encryption stage uses it, through the two libraries it
 * could use: OpenSSL's libcrypto EVP and GnuTLS.  Every encryption sector
 * gets its own tweak (dm-crypt plain64: the sector number), so what counts
 * is the cost of resetting the tweak as much as the cipher itself.  For
 * buffers of 4 KiB and 1 MiB, sectors of 512 and 4096 bytes, AES-128-XTS
 * (32-byte key) and AES-256-XTS (64-byte key), each library runs for 0.2 s
 * of thread CPU time, 5 times, interleaved; the best is printed in GB/s of
 * one core (CPU time, not wall time: on a shared host the wall clock
 * measures the neighbours).  Built and run by bench/cipher-speed.
 */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

struct ctx {
	EVP_CIPHER_CTX *evp;
	gnutls_cipher_hd_t gt;
	uint8_t *buf;
};

/* GB/s of one core for lib (0 OpenSSL, 1 GnuTLS) over len bytes in
 * sectors of ss. */
static double run(struct ctx *c, int lib, size_t len, unsigned int ss)
{
	double t0 = cpu_now(), t;
	uint64_t sector = 0;
	size_t total = 0;

	do {
		for (size_t off = 0; off < len; off += ss) {
			uint8_t iv[16] = {0};
			int outl;

			for (int i = 0; i < 8; i++)
				iv[i] = (uint8_t)(sector >> (8 * i));
			sector++;
			if (lib == 0) {
				EVP_CipherInit_ex(c->evp, NULL, NULL, NULL, iv, 1);
				EVP_CipherUpdate(c->evp, c->buf + off, &outl, c->buf + off,
						 (int)ss);
			} else {
				gnutls_cipher_set_iv(c->gt, iv, sizeof(iv));
				gnutls_cipher_encrypt(c->gt, c->buf + off, ss);
			}
		}
		total += len;
		t = cpu_now() - t0;
	} while (t < 0.2);
	return total / t / 1e9;
}

int main(void)
{
	static const size_t lens[] = {4096, 1 << 20};
	static const unsigned int sectors[] = {512, 4096};
	static const size_t klens[] = {32, 64};
	uint8_t key[64];

	for (int i = 0; i < 64; i++)
		key[i] = (uint8_t)(i * 37 + 11);
	printf("%-8s %-8s %-7s %8s %8s\n", "key", "buffer", "sector", "openssl", "gnutls");
	for (size_t k = 0; k < 2; k++) {
		struct ctx c;
		gnutls_datum_t d = {key, (unsigned int)klens[k]};

		c.buf = aligned_alloc(4096, 1 << 20);
		memset(c.buf, 0x5a, 1 << 20);
		c.evp = EVP_CIPHER_CTX_new();
		if (!c.evp ||
		    !EVP_CipherInit_ex(c.evp,
				       klens[k] == 32 ? EVP_aes_128_xts() : EVP_aes_256_xts(), NULL,
				       key, NULL, 1) ||
		    gnutls_cipher_init(&c.gt,
				       klens[k] == 32 ? GNUTLS_CIPHER_AES_128_XTS
						      : GNUTLS_CIPHER_AES_256_XTS,
				       &d, NULL) < 0) {
			fprintf(stderr, "cipher-speed: cannot set up AES-XTS\n");
			return 1;
		}
		for (size_t l = 0; l < 2; l++) {
			for (size_t s = 0; s < 2; s++) {
				double best[2] = {0, 0};

				for (int r = 0; r < 5; r++) {
					for (int lib = 0; lib < 2; lib++) {
						double v = run(&c, lib, lens[l], sectors[s]);

						if (v > best[lib])
							best[lib] = v;
					}
				}
				printf("%-8s %-8s %-7u %8.2f %8.2f  GB/s per core\n",
				       klens[k] == 32 ? "256-bit" : "512-bit",
				       lens[l] == 4096 ? "4 KiB" : "1 MiB", sectors[s], best[0],
				       best[1]);
			}
		}
		EVP_CIPHER_CTX_free(c.evp);
		gnutls_cipher_deinit(c.gt);
		free(c.buf);
	}
	return 0;
}
