/* SPDX-License-Identifier: MIT */
/*
 * Power-of-two alignment helpers shared by the engine and the file store's
 * probe.  Pure; the alignment must be a power of two (asserted).
 */
#ifndef AIOLOOP_LIB_ALIGN_H
#define AIOLOOP_LIB_ALIGN_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

static inline bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static inline uint64_t align_down(uint64_t x, uint64_t a)
{
	assert(is_pow2(a));
	return x & ~(a - 1);
}

static inline uint64_t align_up(uint64_t x, uint64_t a)
{
	assert(is_pow2(a));
	return (x + a - 1) & ~(a - 1);
}

#endif
