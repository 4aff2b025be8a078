/* SPDX-License-Identifier: MIT */
/*
 * What the attach, detach, list, resize and upgrade commands share: the
 * state file each attached device keeps in STATE_DIR (key=value lines, see
 * attach.c), and the helpers that read and walk them.  Single-threaded CLI
 * code; the daemon writes its own state file with state_write().
 */
#ifndef AIOLOOP_CLI_ATTACH_STATE_H
#define AIOLOOP_CLI_ATTACH_STATE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STATE_DIR "/run/aioloop"
#define DETACH_WAIT_S 60

/* One attached device, as kept in STATE_DIR/NAME. */
struct att_state {
	char name[64];	 /* ublkb0, nbd3 */
	char device[80]; /* /dev/ublkb0 */
	char type[8];	 /* ublk | nbd */
	int dev_id;	 /* ublk device id / nbd index */
	char backing[PATH_MAX];
	uint64_t offset, sizelimit, size;
	unsigned int block_size, queues, depth;
	bool ro, direct;
	char direct_opt[8]; /* auto | on | off, as asked */
	char engine[16];
	char data_path[16]; /* ublk: auto-buf-reg, zero-copy, user-copy, copy */
	pid_t pid;
	/* Kernel NBD: the request timeout and how long I/O waits for a new
	 * daemon (seconds, as told to the kernel; 0: none). */
	unsigned int nbd_timeout, nbd_dead_conn;
	/* -P: 1, --no-partscan: 0, neither (or an older state file): -1 */
	int partscan;
	/* Encryption: cipher ("" if none) and geometry, never the key. */
	char encrypt[32];
	unsigned int enc_sector;
	bool iv_large, allow_discards;
	uint64_t iv_offset;
};

/* STATE_DIR/NAME + suffix into buf. */
void state_path(const char *name, const char *suffix, char *buf, size_t len);
/* Write s to its state file (atomically, through a rename).  0 or -errno. */
int state_write(const struct att_state *s);
/* Read NAME's state file into s.  0 or -errno. */
int state_read(const char *name, struct att_state *s);
/* Remove NAME's state file and the control socket its daemon may have left. */
void state_remove(const char *name);
void log_remove(const char *name);
/* "/dev/ublkb0" or "ublkb0" -> "ublkb0". */
const char *dev_name(const char *arg);
bool pid_alive(pid_t pid);
/* Call fn for every state file's name; 1 if any call returned non-zero. */
int for_each_state(int (*fn)(const char *name, void *arg), void *arg);

#endif
