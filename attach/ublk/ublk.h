/* SPDX-License-Identifier: MIT */
/*
 * The ublk frontend: a kernel block device /dev/ublkbN whose requests are
 * served by this process through the engine (aioloop/engine.h).
 *
 * ctrl.c  - /dev/ublk-control commands on a private SQE128 ring, with the
 *           opcode encoding (ioctl or legacy) found by trying, never assumed.
 * dev.c   - one device's life: ADD_DEV/SET_PARAMS (or START_USER_RECOVERY),
 *           the queue threads, START_DEV, waiting for a stop request,
 *           STOP_DEV/DEL_DEV.
 * queue.c - one thread and one ring (an aiol_loop set up with SQE128) per
 *           hardware queue: FETCH/COMMIT_AND_FETCH uring_cmds and the engine's
 *           backing I/O on the same ring.
 * datapath.c - which data path (zero copy, user copy, copy) a device uses.
 */
#ifndef AIOLOOP_UBLK_H
#define AIOLOOP_UBLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aioloop/engine.h"
#include "stats/stats.h"
#include "ublk_cmd.h"

#define UBLK_CONTROL_PATH "/dev/ublk-control"
#define UBLK_DEFAULT_POLL_US 500

/* ---- control commands (ctrl.c) ---- */

struct ublk_ctrl;

/* Open /dev/ublk-control and a ring for it.  -errno (-ENOENT: no module). */
int ublk_ctrl_open(struct ublk_ctrl **out);
void ublk_ctrl_close(struct ublk_ctrl *c);
/* UBLK_F_* the kernel supports (GET_FEATURES, 6.5+); -errno when the
 * command is unknown (older kernel: infer from the ADD_DEV echo). */
int ublk_ctrl_get_features(struct ublk_ctrl *c, uint64_t *features);
/* ADD_DEV: info is sent and overwritten with the kernel's answer (dev_id,
 * flags masked to what it supports).  Tries the ioctl encoding, then the
 * legacy opcode; later commands use whichever worked. */
int ublk_ctrl_add_dev(struct ublk_ctrl *c, struct ublksrv_ctrl_dev_info *info);
int ublk_ctrl_get_info(struct ublk_ctrl *c, uint32_t dev_id, struct ublksrv_ctrl_dev_info *info);
int ublk_ctrl_set_params(struct ublk_ctrl *c, uint32_t dev_id, struct ublk_params *p);
/* START_DEV, STOP_DEV, DEL_DEV, START_USER_RECOVERY, END_USER_RECOVERY:
 * nr is the UBLK_CMD_* number, data0 the inline argument (a pid). */
int ublk_ctrl_simple(struct ublk_ctrl *c, unsigned int nr, uint32_t dev_id, uint64_t data0);
/* Whether the ioctl encoding is in use (for the I/O commands too). */
bool ublk_ctrl_ioctl_encode(const struct ublk_ctrl *c);

/* ---- the data path (datapath.c) ---- */

/*
 * How a request's data moves between the kernel and the backing file:
 *   AUTO_BUF_REG  the kernel registers the request's pages in the queue
 *                 ring's buffer table before delivering it (6.16); the
 *                 backing I/O reads and writes them in place: no copy.
 *   ZERO_COPY     the same, registered by a REGISTER_IO_BUF command per
 *                 request (6.15).
 *   USER_COPY     the daemon copies with pread/pwrite on /dev/ublkcN (6.5).
 *   COPY          the kernel copies into a buffer per tag (6.0).
 * UBLK_DP_AUTO (asked only) takes the first of these that the kernel and
 * the backing allow; UBLK_DP_ANY_ZERO_COPY (asked only) the first of the
 * two zero-copy ones.
 */
enum ublk_data_path {
	UBLK_DP_AUTO = 0,
	UBLK_DP_AUTO_BUF_REG, /* "zero-copy-auto" */
	UBLK_DP_ZERO_COPY,    /* "zero-copy-reg" */
	UBLK_DP_USER_COPY,
	UBLK_DP_COPY,
	UBLK_DP_ANY_ZERO_COPY, /* asked only: "zero-copy", either of the two */
};

/* "auto", "zero-copy-auto", "zero-copy-reg", "user-copy", "copy", "zero-copy". */
const char *ublk_data_path_name(enum ublk_data_path dp);
/* Parse one of those names; -EINVAL if unknown. */
int ublk_data_path_parse(const char *s, enum ublk_data_path *out);
/* The UBLK_F_* flag ADD_DEV asks for a data path (0 for copy). */
uint64_t ublk_data_path_flag(enum ublk_data_path dp);
/* The data path a device was created with, from its flags. */
enum ublk_data_path ublk_data_path_of_flags(uint64_t flags);

/*
 * Choose the data path (pure).  want: what was asked; features: what
 * GET_FEATURES reported (0 if it is unknown); zc_kernel: the kernel is
 * 6.15 or later (its ZERO_COPY bit is claimed, not working, before);
 * fixed_ok: the engine can do I/O on a registered buffer it never maps
 * (aiol_dev_fixed_buf_ok).  Returns 0 with *out set, or -EOPNOTSUPP with
 * why saying what is missing for the path that was asked.
 */
int ublk_pick_data_path(enum ublk_data_path want, uint64_t features, bool zc_kernel, bool fixed_ok,
			enum ublk_data_path *out, char *why, size_t len);
/* Whether the running kernel is at least major.minor (uname). */
bool ublk_kernel_at_least(unsigned int major, unsigned int minor);

/* ---- a device (dev.c) ---- */

/* What the kernel does with a device whose daemon is gone (--recovery). */
enum ublk_recovery {
	UBLK_REC_REISSUE = 0, /* I/O waits for the next daemon, in-flight I/O re-sent (6.1) */
	UBLK_REC_FAIL_IO,     /* recoverable, but I/O fails while no daemon runs (6.13) */
	UBLK_REC_NONE,	      /* the device goes with its daemon */
};

/* ublk_dev_run()'s result when the device was handed to the next daemon
 * (upgrade): it is left quiesced, neither stopped nor deleted. */
#define UBLK_DEV_HANDED_OVER 1

struct ublk_dev_opts {
	const char *path;	       /* backing file */
	struct aiol_open_opts open;    /* engine options */
	unsigned int nr_queues;	       /* 0: 1 */
	unsigned int depth;	       /* 0: 64 */
	int dev_id;		       /* -1: the kernel picks */
	bool recover;		       /* dev_id exists, its daemon died */
	enum ublk_data_path data_path; /* asked; ignored with recover */
	enum ublk_recovery recovery;   /* ignored with recover */
	bool no_part_scan;	       /* UBLK_F_NO_AUTO_PART_SCAN (7.0+), else -EOPNOTSUPP */
	int poll_us;		       /* queue threads poll their ring this long before
					* sleeping; 0: UBLK_DEFAULT_POLL_US, < 0: never */
	/* Filled before ready(): the data path in use. */
	enum ublk_data_path *data_path_out;
	/* Online resize, asked with ATTACH_SIG_CONTROL: resize_request()
	 * returns 0 with the new size limit (0: keep it, re-read the backing)
	 * or -ENOENT when nothing is asked; resize_done() gets 0 and the new
	 * size, or -errno and why.  Both on the control thread. */
	int (*resize_request)(void *arg, uint64_t *sizelimit);
	void (*resize_done)(void *arg, int err, uint64_t size, const char *why);
	/* Upgrade, asked the same way: upgrade_request() returns 0 when one
	 * is asked; upgrade_done() gets 0 once the device is quiesced (the
	 * daemon then lets go of it and ublk_dev_run returns
	 * UBLK_DEV_HANDED_OVER), or -errno and why (it keeps serving). */
	int (*upgrade_request)(void *arg);
	void (*upgrade_done)(void *arg, int err, const char *why);
	/* Called once on the control thread when the device is live (err 0),
	 * or has failed to come up (err < 0, dev_id may be -1). */
	void (*ready)(void *arg, int dev_id, const struct aiol_dev_info *info, int err);
	void *arg;
	struct stats_export *stats; /* request statistics (stats/stats.h), one shard
				       per queue; NULL: none kept */
};

/*
 * Run a device until SIGTERM/SIGINT (blocked in every thread by the
 * caller's thread) or a queue failure, then stop and delete it.  Called on
 * the process's main thread, which becomes the control thread.  Returns 0,
 * UBLK_DEV_HANDED_OVER (upgrade) or -errno.  After a recovery-capable device's daemon is killed the
 * device stays (quiesced) until `ublk_dev_recover`-mode runs again or
 * ublk_dev_remove() deletes it.
 */
int ublk_dev_run(const struct ublk_dev_opts *o);

/* Stop and delete a device whose daemon is gone (control path). */
int ublk_dev_remove(uint32_t dev_id);

/* Why ublk cannot be used here, or NULL when /dev/ublk-control opens. */
const char *ublk_unavailable(char *buf, size_t len);

/* ---- queues (queue.c) ---- */

struct ublk_queue;

struct ublk_queue_cfg {
	struct aiol_dev *dev;
	int cdev_fd; /* /dev/ublkcN */
	unsigned int q_id;
	unsigned int depth;
	unsigned int buf_bytes;	       /* per tag (max_io_buf_bytes) */
	enum ublk_data_path data_path; /* resolved: never UBLK_DP_AUTO */
	unsigned int poll_us;
	bool ioctl_encode;
	struct stats_export *stats;				   /* NULL: none */
	void (*started)(void *arg, struct ublk_queue *q, int err); /* FETCHes submitted */
	void (*exited)(void *arg, struct ublk_queue *q);
	void *arg;
};

/* Start the queue thread.  cfg is copied.  Returns 0 or -errno. */
int ublk_queue_start(const struct ublk_queue_cfg *cfg, struct ublk_queue **out);
/* Ask the thread to leave once its tags are aborted or, when force, at
 * once (its ring is torn down, which cancels the uring_cmds). */
void ublk_queue_stop(struct ublk_queue *q, bool force);
/* Wait for the thread and free.  Returns the thread's result. */
int ublk_queue_join(struct ublk_queue *q);

#endif
