// SPDX-License-Identifier: MIT
/*
 * The sync backend: the "before" baseline.  One request at a time (the
 * queue depth is forced to 1), in submission order, each primitive run
 * with a blocking system call on the loop thread inside aiol_submit() (or
 * inside the completion that starts the next parked request).  The
 * trampoline in engine.c feeds results back without recursion; done() is
 * still deferred to the loop like on every backend.
 */
#include "engine_internal.h"

static int sync_init(struct aiol_queue *q)
{
	(void)q;
	return 0;
}

static void sync_fini(struct aiol_queue *q)
{
	(void)q;
}

static void sync_issue(struct aiol_queue *q, struct aiol_req *req)
{
	/* Never called: engine.c runs inline backends itself. */
	eng_io_done(req, eng_exec(q->dev, req));
}

const struct eng_backend eng_backend_sync = {
	.name = "sync",
	.inline_exec = true,
	.init = sync_init,
	.fini = sync_fini,
	.issue = sync_issue,
};
