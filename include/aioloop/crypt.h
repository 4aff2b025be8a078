/* SPDX-License-Identifier: MIT */
/*
 * Encryption in dm-crypt's plain format, as a stage (aioloop/store.h): a
 * store that owns a lower store and encrypts every encryption sector (512
 * or 4096 bytes) of the data with a key read from a file, the IV being the
 * sector's number in the data (plus an IV offset) as `cryptsetup open
 * --type plain` computes it.  A backing written through it opens with
 *   cryptsetup open --type plain --cipher CIPHER --key-size BITS
 *       --key-file FILE [--sector-size N [--iv-large-sectors]]
 *       [--offset DATA_OFFSET/512] [--skip IV_OFFSET] BACKING NAME
 * and the other way round.
 *
 * The pure parts (cipher names, IV numbers, key lengths) do no I/O, so
 * unit tests call them directly.  Ciphers come from GnuTLS (AES-NI / VAES
 * code paths); none is written here.
 *
 * Key hygiene: a key lives in one page of its own, locked in memory
 * (mlock), left out of core dumps (MADV_DONTDUMP), wiped when freed, and is
 * never logged.  Reading a key also marks the process as not dumpable
 * (PR_SET_DUMPABLE 0), since the cipher library's key schedules live in
 * ordinary memory.
 */
#ifndef AIOLOOP_CRYPT_H
#define AIOLOOP_CRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aiol_store;

enum aiol_crypt_mode {
	AIOL_CRYPT_XTS_PLAIN64 = 0, /* aes-xts-plain64: key 32 or 64 bytes */
	AIOL_CRYPT_CBC_ESSIV,	    /* aes-cbc-essiv:sha256: key 16, 24 or 32 bytes */
};

struct aiol_crypt_spec {
	enum aiol_crypt_mode mode;
	const char *name; /* canonical, as cryptsetup spells it */
};

/* Parse a cipher specification as cryptsetup writes it ("aes-xts-plain64",
 * "aes-cbc-essiv:sha256").  Returns 0 or -EINVAL for anything else. */
int aiol_crypt_spec_parse(const char *s, struct aiol_crypt_spec *out);
/* Whether len bytes is a key length of spec. */
bool aiol_crypt_key_len_ok(const struct aiol_crypt_spec *spec, size_t len);
/* The key lengths of spec in words, for messages ("32 or 64 bytes (256 or
 * 512 bits)"). */
const char *aiol_crypt_key_lens(const struct aiol_crypt_spec *spec);

/* Where each sector's IV comes from. */
struct aiol_crypt_geom {
	unsigned int sector_size; /* encryption sector: 512 or 4096 */
	bool iv_large_sectors;	  /* IVs count sector_size units, not 512 bytes */
	uint64_t iv_offset;	  /* added to every IV number, in 512-byte sectors */
};

/* Check a geometry: sector size 512 or 4096, and an IV offset that is a
 * whole number of encryption sectors (as dm-crypt requires).  Returns 0 or
 * -EINVAL. */
int aiol_crypt_geom_check(const struct aiol_crypt_geom *g);

/*
 * The IV number of the encryption sector at byte off of the data (a
 * multiple of sector_size): dm-crypt's (off / 512 + iv_offset), shifted
 * down to sector_size units with iv_large_sectors.  plain64 uses it as a
 * 64-bit little-endian number padded with zeroes; essiv encrypts that
 * block with the hash of the key.
 */
static inline uint64_t aiol_crypt_iv_sector(const struct aiol_crypt_geom *g, uint64_t off)
{
	uint64_t s = (off >> 9) + g->iv_offset;

	if (g->iv_large_sectors)
		s >>= __builtin_ctz(g->sector_size) - 9;
	return s;
}

/* A key in locked memory. */
struct aiol_crypt_key;

/*
 * Read the key of spec from path ("-": standard input), all of it: its
 * length must be one of spec's (a longer or shorter file is an error that
 * says which lengths fit).  A regular file that its group or others may
 * read is warned about.  Returns 0 or -errno, with one line logged that
 * never shows key bytes.
 */
int aiol_crypt_key_read(const char *path, const struct aiol_crypt_spec *spec,
			struct aiol_crypt_key **out);
/* The same from an open descriptor (not closed); name is for messages. */
int aiol_crypt_key_read_fd(int fd, const char *name, const struct aiol_crypt_spec *spec,
			   struct aiol_crypt_key **out);
/* A copy of len bytes (locked like the others).  Returns 0 or -errno. */
int aiol_crypt_key_new(const void *bytes, size_t len, struct aiol_crypt_key **out);
/* Wipe, unlock and free; NULL is fine. */
void aiol_crypt_key_free(struct aiol_crypt_key *key);
size_t aiol_crypt_key_len(const struct aiol_crypt_key *key);
const uint8_t *aiol_crypt_key_bytes(const struct aiol_crypt_key *key);

struct aiol_crypt_opts {
	struct aiol_crypt_spec spec;
	const struct aiol_crypt_key *key; /* copied: the caller may free it after open */
	struct aiol_crypt_geom geom;
	bool allow_discards; /* pass discards down (they show which blocks are free) */
	/* Threads that encrypt and decrypt READs and WRITEs of at least
	 * AIOL_CRYPT_POOL_MIN bytes, shared by the store's queues; smaller
	 * ones (and all with 0) run on the loop thread.  Started with the
	 * first queue, so a process may fork after the open. */
	unsigned int threads;
};

/* Smallest request the crypto threads take (docs/ARCHITECTURE.md). */
#define AIOL_CRYPT_POOL_MIN (64u * 1024)

/*
 * Open the encryption stage over lower, which it then owns (closed with
 * it, or here on failure).  The stage shows lower's window rounded down to
 * whole encryption sectors, asks the engine for sector_size alignment (so
 * that unaligned requests are read-modify-written in whole sectors),
 * writes zeroes as encrypted zeroes, reports every range as data, and
 * refuses discard unless allow_discards.  Returns 0 or -errno (logged).
 */
int aiol_crypt_store_open(struct aiol_store *lower, const struct aiol_crypt_opts *opts,
			  struct aiol_store **out);

#endif
