// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for NBD negotiation: the input is everything a client
 * sends after the server's greeting (client flags, then options), played
 * to the real server over a socketpair.  Reaching the transmission phase
 * is allowed; whatever follows is read as requests.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_session(NULL, 0, data, size);
	return 0;
}
