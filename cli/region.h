/* SPDX-License-Identifier: MIT */
/*
 * Which part of which file an attached device serves, and whether two such
 * regions overlap: `attach -L` (losetup's --nooverlap) refuses a new device
 * whose region overlaps an attached one's, and reuses one that serves the
 * very same region.  Pure: no I/O, unit-tested.
 */
#ifndef AIOLOOP_CLI_REGION_H
#define AIOLOOP_CLI_REGION_H

#include <stdint.h>

/* A backing file (st_dev and st_ino of a file, the device number of a
 * block device) and [offset, offset + sizelimit); sizelimit 0: to the end
 * of the file, however far it grows. */
struct att_region {
	uint64_t dev, ino;
	uint64_t offset, sizelimit;
};

enum region_overlap {
	REGION_APART,	/* another file, or no byte in common */
	REGION_OVERLAP, /* some bytes in common */
	REGION_SAME,	/* the same file, offset and size limit */
};

/* How a and b relate.  Overflow-safe for any offset and size limit. */
enum region_overlap region_overlap(const struct att_region *a, const struct att_region *b);

#endif
