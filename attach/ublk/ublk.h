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

/* ---- a device (dev.c) ---- */

struct ublk_dev_opts {
	const char *path;	    /* backing file */
	struct aiol_open_opts open; /* engine options */
	unsigned int nr_queues;	    /* 0: 1 */
	unsigned int depth;	    /* 0: 64 */
	int dev_id;		    /* -1: the kernel picks */
	bool recover;		    /* dev_id exists, its daemon died */
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
 * the process's main thread, which becomes the control thread.  Returns 0
 * or -errno.  After a recovery-capable device's daemon is killed the
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
	unsigned int buf_bytes; /* per tag (max_io_buf_bytes) */
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
