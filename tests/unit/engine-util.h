/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the engine's conformance tests (test-engine.c) and the
 * fault-injection checker (tests/fuse/fault-check.c): a loop + dev + queue
 * bundle, requests that record how they completed, a loop runner with a
 * deadline, a seeded PRNG and whole-file comparison through a separate fd.
 *
 * Everything runs on the calling thread; nothing here is thread-safe.
 * Functions return 0 or -errno like the library they test.
 */
#ifndef AIOLOOP_TESTS_ENGINE_UTIL_H
#define AIOLOOP_TESTS_ENGINE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/time_types.h>

#include "aioloop/engine.h"
#include "aioloop/loop.h"

/* A dev bound to a queue on a loop owned by the calling thread. */
struct eng_env {
	struct aiol_loop *loop;
	struct aiol_dev *dev;
	struct aiol_queue *q;
	const struct aiol_dev_info *info;
	unsigned int pending;		/* submitted, done() not yet run */
	bool in_submit;			/* inside aiol_submit() right now */
	unsigned int done_in_submit;	/* contract violations seen */
	unsigned int double_done;
	unsigned int completed;		/* done() calls in total */
	struct aiol_event tick_ev;	/* wakes eng_drain() to check its deadline */
	struct __kernel_timespec tick_ts;
	bool tick_armed;
};

/* One request and what happened to it. */
struct eng_op {
	struct aiol_req req;
	struct eng_env *env;
	int res;
	bool done;
	unsigned int seq;		/* completion order, from 1 */
};

/* Open path with *opts, create a loop (arena_bytes 0: default) and a queue
 * of the given depth (0: default).  On failure everything is undone and
 * -errno returned; *e is then zeroed. */
int eng_env_open(struct eng_env *e, const char *path,
		 const struct aiol_open_opts *opts, size_t arena_bytes,
		 unsigned int depth);
/* Destroy queue, dev and loop (the caller has waited for all requests). */
void eng_env_close(struct eng_env *e);

/* Fill op for a data request; buf may be NULL for ops that carry none. */
void eng_op_init(struct eng_op *op, uint8_t opcode, uint64_t off, uint64_t len,
		 void *buf, uint32_t flags);
/* Submit op (recording the contract checks); returns aiol_submit()'s value. */
int eng_submit(struct eng_env *e, struct eng_op *op);
/* Run the loop until nothing submitted through e is pending or timeout_ms
 * passed: 0 or -ETIMEDOUT (or a loop error). */
int eng_drain(struct eng_env *e, unsigned int timeout_ms);
/* Submit one request and wait for it: returns the res done() got, or
 * -ETIMEDOUT / the submit error. */
int eng_run(struct eng_env *e, uint8_t opcode, uint64_t off, uint64_t len,
	    void *buf, uint32_t flags);

/* xorshift64*: deterministic, seeded from the test. */
uint64_t eng_rand(uint64_t *state);
/* Uniform in [lo, hi] (hi >= lo). */
uint64_t eng_rand_range(uint64_t *state, uint64_t lo, uint64_t hi);
void eng_rand_fill(uint64_t *state, void *buf, size_t len);

/* Create path with size bytes of seeded random data, written and fsynced
 * (fully allocated).  Returns 0 or -errno. */
int eng_make_file(const char *path, uint64_t size, uint64_t seed, void *copy_out);
/* Read len bytes at off of path through a fresh fd (O_DIRECT when
 * direct, into an aligned bounce) into out.  Returns 0 or -errno. */
int eng_read_file(const char *path, uint64_t off, size_t len, void *out, bool direct);
/* Compare path's [off, off+len) with want; returns -1 when equal, else the
 * first differing offset relative to off, or -2 on a read error. */
int64_t eng_file_cmp(const char *path, uint64_t off, const void *want, size_t len);

/* Whether a file in dir can be opened with O_DIRECT. */
bool eng_dir_has_odirect(const char *dir);
/* Whether dir is on tmpfs (whose O_DIRECT is no real direct I/O). */
bool eng_dir_is_tmpfs(const char *dir);
/* The directory tests put files in: $TMPDIR, else /var/tmp. */
const char *eng_tmpdir(void);

#endif
