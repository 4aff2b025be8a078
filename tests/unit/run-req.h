/* SPDX-License-Identifier: MIT */
/*
 * For unit tests that hold their own loop and queue (include after
 * <cmocka.h>): done_cb() stores a request's result where req->user points,
 * and run_req() runs one request to completion, asserting the engine's
 * contract that done() never runs inside aiol_submit().
 */
#ifndef AIOLOOP_TEST_RUN_REQ_H
#define AIOLOOP_TEST_RUN_REQ_H

#include "aioloop/engine.h"
#include "aioloop/loop.h"

/* done() calls on this thread (a queue completes on its own thread). */
static _Thread_local int nd;

static void done_cb(struct aiol_req *req, int res)
{
	*(int *)req->user = res;
	nd++;
}

/* Submit one request and run the loop until it completes. */
static int run_req(struct aiol_loop *loop, struct aiol_queue *q, struct aiol_req *req)
{
	int res = 1, before = nd;

	req->done = done_cb;
	req->user = &res;
	assert_int_equal(aiol_submit(q, req), 0);
	assert_int_equal(nd, before); /* never completed inline */
	while (nd == before)
		assert_true(aiol_loop_run_once(loop, true) >= 0);
	return res;
}

#endif
