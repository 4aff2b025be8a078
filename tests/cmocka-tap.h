/* SPDX-License-Identifier: MIT */
/*
 * What every cmocka program of the test suite links: meson test runs them
 * with CMOCKA_MESSAGE_OUTPUT=TAP and reads each case's result from that
 * output (tests/meson.build).  A program that cannot run at all says so
 * with test_skip_all(); a case that cannot run calls cmocka's skip() after
 * printing why on a line starting with "# " (a TAP comment).
 */
#ifndef AIOLOOP_TESTS_CMOCKA_TAP_H
#define AIOLOOP_TESTS_CMOCKA_TAP_H

/*
 * Skip the whole program because WHY.  Prints the reason in the form the
 * harness reads (a "1..0 # SKIP" plan under TAP, a "skip:" line otherwise)
 * and returns the status main() should exit with: 0 under TAP, where the
 * plan carries the skip, 77 otherwise.
 */
int test_skip_all(const char *why);

#endif
