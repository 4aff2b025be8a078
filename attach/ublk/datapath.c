// SPDX-License-Identifier: MIT
/*
 * Which data path a ublk device uses: the names, the feature flag each
 * needs at ADD_DEV, and the choice among them from what the kernel reports
 * and what the engine can do.  Pure functions (but for the uname() of
 * ublk_kernel_at_least), unit-tested.
 *
 * The order of preference is that of the copies saved: automatic buffer
 * registration (6.16) needs no command per request and no copy; manual
 * registration (6.15) no copy, two extra commands; user copy (6.5) and
 * the kernel's copy mode one copy each, user copy in a pread/pwrite of
 * ours.  Zero copy needs the io_uring engine (the backing I/O must be a
 * READ_FIXED/WRITE_FIXED on the ring the buffer is registered with) and
 * requests that never need a read-modify-write, whose bounce we could not
 * fill from pages we cannot see.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "ublk.h"

static const char *const dp_names[] = {
    [UBLK_DP_AUTO] = "auto",
    [UBLK_DP_AUTO_BUF_REG] = "zero-copy-auto",
    [UBLK_DP_ZERO_COPY] = "zero-copy-reg",
    [UBLK_DP_USER_COPY] = "user-copy",
    [UBLK_DP_COPY] = "copy",
    /* asked for, never in use: */
    [UBLK_DP_ANY_ZERO_COPY] = "zero-copy",
};

const char *ublk_data_path_name(enum ublk_data_path dp)
{
	if ((unsigned int)dp >= sizeof(dp_names) / sizeof(dp_names[0]))
		return "?";
	return dp_names[dp];
}

int ublk_data_path_parse(const char *s, enum ublk_data_path *out)
{
	for (unsigned int i = 0; i < sizeof(dp_names) / sizeof(dp_names[0]); i++) {
		if (!strcmp(s, dp_names[i])) {
			*out = (enum ublk_data_path)i;
			return 0;
		}
	}
	return -EINVAL;
}

uint64_t ublk_data_path_flag(enum ublk_data_path dp)
{
	switch (dp) {
	case UBLK_DP_AUTO_BUF_REG:
		return UBLK_F_AUTO_BUF_REG;
	case UBLK_DP_ZERO_COPY:
		return UBLK_F_SUPPORT_ZERO_COPY;
	case UBLK_DP_USER_COPY:
		return UBLK_F_USER_COPY;
	default:
		return 0;
	}
}

enum ublk_data_path ublk_data_path_of_flags(uint64_t flags)
{
	if (flags & UBLK_F_AUTO_BUF_REG)
		return UBLK_DP_AUTO_BUF_REG;
	if (flags & UBLK_F_SUPPORT_ZERO_COPY)
		return UBLK_DP_ZERO_COPY;
	if (flags & UBLK_F_USER_COPY)
		return UBLK_DP_USER_COPY;
	return UBLK_DP_COPY;
}

int ublk_pick_data_path(enum ublk_data_path want, uint64_t features, bool zc_kernel, bool fixed_ok,
			enum ublk_data_path *out, char *why, size_t len)
{
	bool abr = (features & UBLK_F_AUTO_BUF_REG) && fixed_ok;
	bool zc = (features & UBLK_F_SUPPORT_ZERO_COPY) && zc_kernel && fixed_ok;
	bool uc = features & UBLK_F_USER_COPY;
	bool kernel_zc = (features & UBLK_F_AUTO_BUF_REG) ||
			 ((features & UBLK_F_SUPPORT_ZERO_COPY) && zc_kernel);

	if (why && len)
		why[0] = '\0';
	switch (want) {
	case UBLK_DP_AUTO:
		*out = abr  ? UBLK_DP_AUTO_BUF_REG
		       : zc ? UBLK_DP_ZERO_COPY
		       : uc ? UBLK_DP_USER_COPY
			    : UBLK_DP_COPY;
		return 0;
	case UBLK_DP_AUTO_BUF_REG:
	case UBLK_DP_ZERO_COPY:
	case UBLK_DP_ANY_ZERO_COPY:
		if (abr && want != UBLK_DP_ZERO_COPY) {
			*out = UBLK_DP_AUTO_BUF_REG;
			return 0;
		}
		if (zc && want != UBLK_DP_AUTO_BUF_REG) {
			*out = UBLK_DP_ZERO_COPY;
			return 0;
		}
		if (want == UBLK_DP_AUTO_BUF_REG && !(features & UBLK_F_AUTO_BUF_REG))
			snprintf(why, len, "the kernel has no UBLK_F_AUTO_BUF_REG (Linux 6.16+)");
		else if (want == UBLK_DP_ZERO_COPY &&
			 !((features & UBLK_F_SUPPORT_ZERO_COPY) && zc_kernel))
			snprintf(
			    why, len,
			    "the kernel has no working UBLK_F_SUPPORT_ZERO_COPY (Linux 6.15+)");
		else if (!kernel_zc)
			snprintf(why, len,
				 "the kernel has no ublk zero copy (UBLK_F_AUTO_BUF_REG, Linux "
				 "6.16+, or UBLK_F_SUPPORT_ZERO_COPY, 6.15+)");
		else
			snprintf(why, len,
				 "zero copy needs the uring engine and a block size that direct "
				 "I/O on the backing takes without read-modify-write");
		return -EOPNOTSUPP;
	case UBLK_DP_USER_COPY:
		if (uc) {
			*out = UBLK_DP_USER_COPY;
			return 0;
		}
		snprintf(why, len, "the kernel has no UBLK_F_USER_COPY (Linux 6.5+)");
		return -EOPNOTSUPP;
	case UBLK_DP_COPY:
	default:
		*out = UBLK_DP_COPY;
		return 0;
	}
}

bool ublk_kernel_at_least(unsigned int major, unsigned int minor)
{
	struct utsname u;
	unsigned int ma = 0, mi = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}
