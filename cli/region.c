// SPDX-License-Identifier: MIT
/*
 * Overlap of backing regions (region.h), for `attach -L`.
 */
#include "region.h"

/* One past the region's last byte; UINT64_MAX for "to the end" or when
 * offset + sizelimit does not fit. */
static uint64_t region_end(const struct att_region *r)
{
	uint64_t end;

	if (!r->sizelimit || __builtin_add_overflow(r->offset, r->sizelimit, &end))
		return UINT64_MAX;
	return end;
}

enum region_overlap region_overlap(const struct att_region *a, const struct att_region *b)
{
	if (a->dev != b->dev || a->ino != b->ino)
		return REGION_APART;
	if (a->offset == b->offset && a->sizelimit == b->sizelimit)
		return REGION_SAME;
	return a->offset < region_end(b) && b->offset < region_end(a) ? REGION_OVERLAP
								      : REGION_APART;
}
