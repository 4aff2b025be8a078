/* SPDX-License-Identifier: MIT */
/*
 * Shared setup of the libFuzzer harnesses: one real NBD server (the code of
 * nbd/, with its worker loop and engine queue) over two small temporary
 * files, created once per process, and a function that plays one client
 * byte stream to it over a socketpair and waits until the server has let
 * the connection go.
 */
#ifndef AIOLOOP_FUZZ_COMMON_H
#define AIOLOOP_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_EXPORT_SIZE (256u << 10)

/* Create the server on first use; aborts on failure (nothing to fuzz).
 * TLS is offered (--tls=on) with a PSK for identity "fuzz". */
void fuzz_setup(void);

/* Send pre (len npre) then data (len n) as one client's byte stream, close
 * the sending side, read and discard everything the server answers until it
 * closes, and wait until the server counts no connection. */
void fuzz_session(const uint8_t *pre, size_t npre, const uint8_t *data, size_t n);

/* The same, but the stream after pre goes through TLS: the harness sends
 * the client flags and NBD_OPT_STARTTLS, does a PSK handshake as a GnuTLS
 * client, then sends pre and data encrypted (pre is then the options that
 * follow STARTTLS).  Aborts if the server does not accept STARTTLS. */
void fuzz_session_tls(const uint8_t *pre, size_t npre, const uint8_t *data, size_t n);

#endif
