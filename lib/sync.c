// SPDX-License-Identifier: MIT
/*
 * The file store's sync backend: the "before" baseline.  One request at a
 * time (the engine's queue depth is 1 for it), in submission order, each
 * primitive run with a blocking system call on the loop thread inside
 * aiol_submit() (or inside the completion that starts the next parked
 * request).  The trampoline in file.c feeds results back without
 * recursion; the engine still defers the request's done() to the loop like
 * on every backend.
 */
#include "file.h"

static int sync_init(struct file_queue *fq)
{
	(void)fq;
	return 0;
}

static void sync_fini(struct file_queue *fq)
{
	(void)fq;
}

static void sync_issue(struct file_queue *fq, struct aiol_store_io *io)
{
	/* Called from file.c's trampoline only. */
	aiol_store_complete(io, file_exec(fq->fs, io));
}

const struct file_backend file_backend_sync = {
	.name = "sync",
	.inline_exec = true,
	.init = sync_init,
	.fini = sync_fini,
	.issue = sync_issue,
};
